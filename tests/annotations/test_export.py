"""Export: one row per (sample, task), majority label, ties left out and counted; the CLI end to end."""
from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest

from annotations import db
from annotations.export import COLUMNS, resolve
from annotations.queue import Settings, next_items, record, undo
from l2i_pipeline.cli import main


def ids(env):
    conn = db.connect(env.db_path)
    users = {n: i for i, n in conn.execute("SELECT id, name FROM users")}
    return conn, users


def test_majority_ties_skips_and_undo(env):
    conn, u = ids(env)
    s = Settings(overlap=1.0)
    keys = [i.key for i in next_items(conn, u["ann1"], "mask", 4, s)]
    assert [i.key for i in next_items(conn, u["ann2"], "mask", 4, s)] == keys  # overlap 1: 2 labels each
    k_major, k_tie, k_skip, k_undo = keys
    votes = {
        k_major: [("ann1", "good"), ("ann2", "bad")],
        k_tie: [("ann1", "good"), ("ann2", "bad")],
        k_skip: [("ann1", "skip"), ("ann2", "bad")],
        k_undo: [("ann1", "good")],
    }
    for key, vs in votes.items():
        for name, value in vs:
            record(conn, u[name], "mask", key, value, s)
    # a third vote, as databases from before the lease rules could hold: the majority still decides
    with db.write(conn):
        conn.execute("INSERT INTO events (user_id, sample_id, task, value, t)"
                     " SELECT ?, id, 'mask', 'good', ? FROM samples WHERE key = ?", (u["ann3"], time.time(), k_major))
    assert undo(conn, u["ann1"], "mask", s).item.key == k_undo
    i = next_items(conn, u["ann1"], "inpaint", 1, s)[0]
    record(conn, u["ann1"], "inpaint", i.key, "good")

    rows, summary = resolve(conn)
    by = {(r.key, r.task): r for r in rows}
    assert set(by) == {(k_major, "mask"), (k_skip, "mask"), (i.key, "inpaint")}
    assert by[(k_major, "mask")].label == "good" and by[(k_major, "mask")].annotator == "ann1,ann3"
    assert by[(k_skip, "mask")].label == "bad" and by[(k_skip, "mask")].annotator == "ann2"
    assert summary.ties == {"mask": 1, "inpaint": 0}
    splits = dict(conn.execute("SELECT key, split FROM samples"))
    shards = dict(conn.execute("SELECT key, shard FROM samples"))
    for r in rows:
        assert r.split == splits[r.key] and r.shard == shards[r.key] and r.time.endswith("Z")


def test_cli_pool_users_export(tmp_path, shards_dir, capsys):
    dbp = tmp_path / "cli.sqlite"
    assert main(["annotate", "pool", "--samples", str(shards_dir), "--db", str(dbp),
                 "--size", "10", "--test", "2", "--seed", "3"]) == 0
    assert "8 train + 2 test" in capsys.readouterr().out
    assert main(["annotate", "pool", "--samples", str(shards_dir), "--db", str(dbp)]) == 2  # already pooled
    assert main(["annotate", "users", "add", "alice", "--admin", "--db", str(dbp), "--url", "http://h:1"]) == 0
    out = capsys.readouterr().out
    token = out.split("token:")[1].split()[0]
    assert f"http://h:1/login#token={token}" in out
    assert main(["annotate", "users", "add", "alice", "--db", str(dbp)]) == 2
    assert main(["annotate", "pool", "--samples", str(tmp_path / "missing"), "--db", str(tmp_path / "x.db")]) == 2

    conn = db.connect(dbp)
    for item in next_items(conn, 1, "mask", 3, Settings()):
        record(conn, 1, "mask", item.key, "bad")
    for fmt, name in (("jsonl", "labels.jsonl"), ("parquet", "labels.parquet")):
        assert main(["annotate", "export", "--db", str(dbp), "--out", str(tmp_path / name), "--format", fmt]) == 0
    lines = (tmp_path / "labels.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 3 and all(tuple(r) == COLUMNS for r in rows)
    assert {(r["task"], r["label"], r["annotator"]) for r in rows} == {("mask", "bad", "alice")}
    table = pq.read_table(tmp_path / "labels.parquet")
    assert tuple(table.column_names) == COLUMNS and table.to_pylist() == rows
    assert main(["annotate", "export", "--db", str(tmp_path / "nope.db"), "--out", str(tmp_path / "o.jsonl")]) == 2


def test_all_labels_export_keeps_every_annotators_label(env, tmp_path, capsys):
    """Issue 25 #14: the resolved export drops ties and keeps only winners; --all-labels keeps every label."""
    conn, u = ids(env)
    s = Settings(overlap=1.0)
    keys = [i.key for i in next_items(conn, u["ann1"], "mask", 3, s)]
    next_items(conn, u["ann2"], "mask", 3, s)
    for key, a, b in zip(keys, ["good", "good", "bad"], ["good", "bad", "bad"]):
        record(conn, u["ann1"], "mask", key, a, s)
        record(conn, u["ann2"], "mask", key, b, s)
    out = tmp_path / "all.jsonl"
    assert main(["annotate", "export", "--db", str(env.db_path), "--out", str(out), "--all-labels"]) == 0
    assert "6 labels (every annotator's)" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(tuple(r) == COLUMNS and r["time"].endswith("Z") for r in rows)
    assert sorted((r["key"], r["annotator"], r["label"]) for r in rows) == sorted(
        [(keys[0], "ann1", "good"), (keys[0], "ann2", "good"), (keys[1], "ann1", "good"), (keys[1], "ann2", "bad"),
         (keys[2], "ann1", "bad"), (keys[2], "ann2", "bad")])
    meta = json.loads((tmp_path / "all.jsonl.meta.json").read_text())
    assert meta["kind"] == "all_labels" and meta["labels"]["mask"] == {"good": 3, "bad": 3, "ties": 0}
    # agreement recomputed from the file equals the app's
    from annotations.stats import cohen_kappa, team_stats
    by_key = {}
    for r in rows:
        by_key.setdefault(r["key"], {})[r["annotator"]] = r["label"]
    kappa = cohen_kappa([(v["ann1"], v["ann2"]) for v in by_key.values()])
    app = next(t for t in team_stats(conn, 1.0)["tasks"] if t["task"] == "mask")
    assert kappa == pytest.approx(app["kappa"], abs=1e-3)
    resolved = tmp_path / "resolved.jsonl"
    assert main(["annotate", "export", "--db", str(env.db_path), "--out", str(resolved)]) == 0
    assert len(resolved.read_text().splitlines()) == 2  # the tie is left out there
    assert json.loads((tmp_path / "resolved.jsonl.meta.json").read_text())["kind"] == "resolved"
