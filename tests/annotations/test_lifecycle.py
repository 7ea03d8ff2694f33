"""Account lifecycle through the CLI, checked against the real app: revoke, rotate, remove, set-role, audit."""
from __future__ import annotations

import json

import pytest

from annotations import db
from l2i_pipeline.cli import main


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["annotate", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def token_from(out: str) -> str:
    return out.split("token:")[1].split()[0]


def audit(env) -> list[tuple[str, str, dict]]:
    conn = db.connect(env.db_path)
    return [(a, n, json.loads(d)) for a, n, d in conn.execute("SELECT action, name, detail FROM audit ORDER BY id")]


def test_revoke_ends_token_and_live_sessions_at_once(env, make_client, do_login, capsys):
    c = make_client("ann1")
    key = c.post("/api/tasks/mask/next", json={"n": 2}).json()["items"][0]["key"]
    assert c.post("/api/tasks/mask/label", json={"key": key, "label": "good"}).status_code == 200
    rc, out, _ = cli(capsys, "users", "revoke", "ann1", "--db", str(env.db_path))
    assert rc == 0 and "1 live session" in out
    assert c.get("/api/me").status_code == 401  # the open session is dead
    assert c.post("/api/tasks/mask/next", json={"n": 1}).status_code == 401
    assert make_client().post("/api/login", json={"token": env.tokens["ann1"]}).status_code == 401
    conn = db.connect(env.db_path)
    assert conn.execute("SELECT COUNT(*) FROM leases l JOIN users u ON u.id = l.user_id WHERE u.name = 'ann1'"
                        ).fetchone()[0] == 0  # the held sample went back to the queue
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1  # the label stays
    rc, out, _ = cli(capsys, "users", "list", "--db", str(env.db_path))
    assert "ann1\tannotator\trevoked" in out

    rc, out, _ = cli(capsys, "users", "rotate", "ann1", "--db", str(env.db_path), "--url", "http://lab:8700")
    new = token_from(out)
    assert rc == 0 and f"http://lab:8700/login#token={new}" in out
    assert make_client().post("/api/login", json={"token": env.tokens["ann1"]}).status_code == 401
    fresh = make_client()
    do_login(fresh, new)
    assert fresh.get("/api/me").json()["name"] == "ann1"
    assert [(a, n) for a, n, _ in audit(env) if n == "ann1"] == [("add", "ann1"), ("revoke", "ann1"),
                                                                  ("rotate", "ann1")]


def test_rotate_kills_the_old_token_and_its_sessions(env, make_client, capsys):
    old = make_client("ann2")
    rc, out, _ = cli(capsys, "users", "rotate", "ann2", "--db", str(env.db_path))
    assert rc == 0 and old.get("/api/me").status_code == 401
    assert make_client().post("/api/login", json={"token": env.tokens["ann2"]}).status_code == 401
    assert make_client().post("/api/login", json={"token": token_from(out)}).status_code == 200


def test_set_role_and_remove(env, make_client, capsys):
    c = make_client("ann3")
    assert c.get("/api/stats").status_code == 403
    assert cli(capsys, "users", "set-role", "ann3", "admin", "--db", str(env.db_path))[0] == 0
    assert c.get("/api/stats").status_code == 200  # roles are read per request
    assert cli(capsys, "users", "set-role", "ann3", "annotator", "--db", str(env.db_path))[0] == 0
    assert c.get("/api/stats").status_code == 403

    key = c.post("/api/tasks/inpaint/next", json={"n": 1}).json()["items"][0]["key"]
    assert c.post("/api/tasks/inpaint/label", json={"key": key, "label": "bad"}).status_code == 200
    rc, out, _ = cli(capsys, "users", "remove", "ann3", "--db", str(env.db_path))
    assert rc == 0 and "1 label" in out
    assert c.get("/api/me").status_code == 401
    assert make_client().post("/api/login", json={"token": env.tokens["ann3"]}).status_code == 401
    _, out, _ = cli(capsys, "users", "list", "--db", str(env.db_path))
    assert "ann3" not in out
    _, out, _ = cli(capsys, "users", "list", "--all", "--db", str(env.db_path))
    assert "ann3\tannotator\tremoved" in out
    rc, _, err = cli(capsys, "users", "revoke", "ann3", "--db", str(env.db_path))
    assert rc == 2 and err.strip() == "l2i annotate: error: no user 'ann3' (see `l2i annotate users list`)"
    actions = [(a, d) for a, n, d in audit(env) if n == "ann3"]
    assert [a for a, _ in actions] == ["add", "set-role", "set-role", "remove"]
    assert actions[1][1] == {"role": "admin", "was": "annotator"} and actions[3][1]["labels_kept"] == 1
    # the removed annotator's label is history: it is still exported
    out_file = env.db_path.parent / "labels.jsonl"
    assert main(["annotate", "export", "--db", str(env.db_path), "--out", str(out_file)]) == 0
    assert [json.loads(line)["annotator"] for line in out_file.read_text().splitlines()] == ["ann3"]


@pytest.mark.parametrize("action", [["revoke", "nobody"], ["rotate", "nobody"], ["remove", "nobody"],
                                    ["set-role", "nobody", "admin"]])
def test_unknown_user_is_a_one_line_error(env, capsys, action):
    rc, out, err = cli(capsys, "users", *action, "--db", str(env.db_path))
    assert rc == 2 and out == "" and err.count("\n") == 1 and "no user 'nobody'" in err


def test_users_add_needs_an_existing_pool(tmp_path, env, capsys):
    typo = tmp_path / "lables.sqlite"
    rc, _, err = cli(capsys, "users", "add", "alice", "--db", str(typo))
    assert rc == 2 and "labels database not found" in err and not typo.exists()  # no empty db made
    empty = tmp_path / "empty.sqlite"
    db.connect(empty, create=True).close()
    rc, _, err = cli(capsys, "users", "add", "alice", "--db", str(empty))
    assert rc == 2 and "has no pool" in err
    rc, out, _ = cli(capsys, "users", "add", "alice", "--db", str(env.db_path))
    assert rc == 0 and ("add", "alice", {"role": "annotator"}) in audit(env)


def test_a_database_from_before_the_account_lifecycle_is_upgraded(env, make_client, capsys):
    conn = db.connect(env.db_path)
    conn.execute("DROP TABLE audit")
    conn.execute("DROP TABLE scores")
    conn.execute("ALTER TABLE users DROP COLUMN status")
    conn.execute("DROP INDEX events_by_op")
    conn.execute("ALTER TABLE events DROP COLUMN op")
    conn.execute("PRAGMA user_version = 0")
    conn.close()
    c = make_client("ann1")  # the app upgrades it on first use; old tokens keep working
    assert c.get("/api/me").json()["name"] == "ann1"
    key = c.post("/api/tasks/mask/next", json={"n": 1}).json()["items"][0]["key"]
    for _ in range(2):  # events.op is back: a resent label is stored once
        r = c.post("/api/tasks/mask/label", json={"key": key, "label": "bad", "id": "op-upgrade-1"})
        assert r.status_code == 200
    assert db.connect(env.db_path).execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    assert cli(capsys, "users", "revoke", "ann1", "--db", str(env.db_path))[0] == 0
    assert c.get("/api/me").status_code == 401
    conn = db.connect(env.db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    assert [a for a, _, _ in audit(env)] == ["revoke"]


def test_a_removed_users_name_can_be_restored_or_reused(env, make_client, capsys):
    """Issue 25 #14: a removed name was stuck ("already exists") for ever; now restore it or give it away."""
    c = make_client("ann3")
    key = c.post("/api/tasks/mask/next", json={"n": 1}).json()["items"][0]["key"]
    assert c.post("/api/tasks/mask/label", json={"key": key, "label": "good"}).status_code == 200
    db_arg = ["--db", str(env.db_path)]
    assert cli(capsys, "users", "remove", "ann3", *db_arg)[0] == 0
    rc, _, err = cli(capsys, "users", "add", "ann3", *db_arg)
    assert rc == 2 and "was removed" in err and "users restore ann3" in err and err.count("\n") == 1
    rc, out, _ = cli(capsys, "users", "restore", "ann3", *db_arg)
    assert rc == 0 and "restored" in out
    back = make_client()
    do = back.post("/api/login", json={"token": token_from(out)})
    assert do.status_code == 200
    me = back.get("/api/me", headers={"X-CSRF-Token": do.json()["csrf"]}).json()
    assert me["name"] == "ann3"
    assert back.post("/api/tasks/mask/next", json={"n": 1}, headers={"X-CSRF-Token": do.json()["csrf"]}
                     ).json()["progress"]["count"] == 1  # the same account, with its label
    assert cli(capsys, "users", "restore", "ann3", *db_arg)[0] == 2  # not removed now

    assert cli(capsys, "users", "remove", "ann3", *db_arg)[0] == 0
    rc, out, _ = cli(capsys, "users", "add", "ann3", "--reuse-name", *db_arg)
    assert rc == 0 and token_from(out)
    _, out, _ = cli(capsys, "users", "list", "--all", *db_arg)
    assert "ann3\tannotator\tactive" in out and "ann3~removed-3\tannotator\tremoved" in out
    out_file = env.db_path.parent / "labels.jsonl"
    assert main(["annotate", "export", *db_arg, "--out", str(out_file)]) == 0
    assert [json.loads(line)["annotator"] for line in out_file.read_text().splitlines()] == ["ann3~removed-3"]
    assert [a for a, n, _ in audit(env) if n == "ann3"][-3:] == ["remove", "rename", "add"]
