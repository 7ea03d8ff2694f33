"""Queueing: one label per sample and task, the overlap share twice, never the same sample twice, undo."""
from __future__ import annotations

import time
from collections import Counter, defaultdict

import pytest

from annotations import db
from annotations.queue import QueueError, Settings, next_items, record, undo


def standing(env, task="mask"):
    """{key: [(annotator, value)]} of the current (latest) events."""
    conn = db.connect(env.db_path)
    out = defaultdict(list)
    for key, name, value in conn.execute(
            "SELECT s.key, u.name, c.value FROM current c JOIN samples s ON s.id = c.sample_id"
            " JOIN users u ON u.id = c.user_id WHERE c.task = ? ORDER BY c.id", (task,)):
        out[key].append((name, value))
    return out


def label_all(client, task, label="good", n=3, limit=100):
    """Label everything the queue hands this client; returns the keys in order."""
    seen = []
    for _ in range(limit):
        items = client.post(f"/api/tasks/{task}/next", json={"n": n}).json()["items"]
        if not items:
            return seen
        for item in items:
            r = client.post(f"/api/tasks/{task}/label", json={"key": item["key"], "label": label})
            assert r.status_code == 200, r.text
            seen.append(item["key"])
    raise AssertionError("queue did not run dry")


def test_one_label_per_sample_without_overlap(env, make_client):
    a, b = make_client("ann1", overlap=0.0), make_client("ann2", overlap=0.0)
    held_a = {i["key"] for i in a.post("/api/tasks/mask/next", json={"n": 5}).json()["items"]}
    held_b = {i["key"] for i in b.post("/api/tasks/mask/next", json={"n": 5}).json()["items"]}
    assert len(held_a) == len(held_b) == 5 and not held_a & held_b  # leases keep them apart
    keys = label_all(a, "mask") + label_all(b, "mask")
    assert len(keys) == len(set(keys)) == 12
    votes = standing(env)
    assert all(len(v) == 1 for v in votes.values()) and len(votes) == 12
    assert make_client("ann3", overlap=0.0).post("/api/tasks/mask/next", json={}).json()["items"] == []
    assert len(label_all(make_client("ann3", overlap=0.0), "inpaint")) == 12  # tasks are independent


def test_overlap_share_gets_a_second_distinct_annotator(env, make_client):
    conn = db.connect(env.db_path)
    draws = {k: d for k, d in conn.execute("SELECT key, draw FROM samples")}
    overlap = 0.5
    expected = {k: 2 if d < overlap else 1 for k, d in draws.items()}
    assert 0 < sum(v == 2 for v in expected.values()) < 12
    clients = [make_client(n, overlap=overlap) for n in ("ann1", "ann2", "ann3")]
    for _ in range(3):  # interleave annotators
        for c in clients:
            for item in c.post("/api/tasks/mask/next", json={"n": 2}).json()["items"]:
                assert c.post("/api/tasks/mask/label", json={"key": item["key"], "label": "bad"}).status_code == 200
    for c in clients:
        label_all(c, "mask")
    votes = standing(env)
    assert {k: len(v) for k, v in votes.items()} == expected
    for k, v in votes.items():
        assert len({name for name, _ in v}) == len(v), f"{k} labelled twice by one annotator"
    assert clients[0].post("/api/tasks/mask/next", json={}).json()["progress"]["remaining"] == 0


def test_never_the_same_sample_twice_even_after_skip(env, make_client):
    a = make_client("ann1", overlap=1.0)
    first = a.post("/api/tasks/inpaint/next", json={"n": 2}).json()["items"]
    assert a.post("/api/tasks/inpaint/label", json={"key": first[0]["key"], "label": "skip"}).status_code == 200
    assert a.post("/api/tasks/inpaint/label", json={"key": first[1]["key"], "label": "good"}).status_code == 200
    rest = label_all(a, "inpaint")
    assert not {first[0]["key"], first[1]["key"]} & set(rest) and len(rest) == 10
    # the skipped sample still needs two labels, so both other annotators get it
    b_keys = label_all(make_client("ann2", overlap=1.0), "inpaint")
    assert first[0]["key"] in b_keys
    assert Counter(v for vs in standing(env, "inpaint").values() for _, v in vs) == {"good": 23, "skip": 1}


def test_undo_walks_back_and_returns_the_sample(env, make_client):
    a = make_client("ann1")
    items = a.post("/api/tasks/mask/next", json={"n": 3}).json()["items"]
    k0, k1, k2 = (i["key"] for i in items)
    for key, label in ((k0, "good"), (k1, "bad"), (k2, "skip")):
        a.post("/api/tasks/mask/label", json={"key": key, "label": label})
    r = a.post("/api/tasks/mask/undo", json={})
    assert r.status_code == 200 and r.json()["item"]["key"] == k2
    r = a.post("/api/tasks/mask/undo", json={})
    assert r.json()["item"]["key"] == k1 and r.json()["progress"]["count"] == 1
    held = [i["key"] for i in a.post("/api/tasks/mask/next", json={"n": 3}).json()["items"]]
    assert held[:2] in ([k1, k2], [k2, k1]) and k0 not in held  # undone samples come back first
    assert a.post("/api/tasks/mask/label", json={"key": k1, "label": "good"}).status_code == 200
    votes = standing(env)
    assert votes[k0] == [("ann1", "good")] and votes[k1] == [("ann1", "good")] and votes[k2] == [("ann1", "undo")]
    conn = db.connect(env.db_path)
    history = [v for v, in conn.execute("SELECT e.value FROM events e JOIN samples s ON s.id = e.sample_id"
                                        " WHERE s.key = ? ORDER BY e.id", (k1,))]
    assert history == ["bad", "undo", "good"]  # append-only: the undone label is still there
    latest = {r[0] for r in conn.execute("SELECT MAX(id) FROM events GROUP BY user_id, task, sample_id")}
    assert {r[0] for r in conn.execute("SELECT id FROM current")} == latest


def test_labels_only_for_assigned_samples(env, make_client):
    a, b = make_client("ann1", overlap=0.0), make_client("ann2", overlap=0.0)
    key = a.post("/api/tasks/mask/next", json={"n": 1}).json()["items"][0]["key"]
    r = b.post("/api/tasks/mask/label", json={"key": key, "label": "good"})
    assert r.status_code == 409
    assert a.post("/api/tasks/inpaint/label", json={"key": key, "label": "good"}).status_code == 409
    assert a.post("/api/tasks/mask/label", json={"key": key, "label": "good"}).status_code == 200
    assert a.post("/api/tasks/mask/label", json={"key": key, "label": "good"}).status_code == 200  # a retry is fine


def test_expired_leases_go_back_to_the_queue(env):
    conn = db.connect(env.db_path)
    s = Settings(overlap=0.0, lease_seconds=0.05)
    held = [i.key for i in next_items(conn, 1, "mask", 12, s)]
    assert len(held) == 12 and next_items(conn, 2, "mask", 12, s) == []
    time.sleep(0.1)
    assert {i.key for i in next_items(conn, 2, "mask", 3, s)} == set(held[:3])
    with pytest.raises(QueueError) as e:  # user 2 holds it now: the late label is refused
        record(conn, 1, "mask", held[0], "good", s)
    assert e.value.status == 409
    record(conn, 1, "mask", held[5], "good", s)  # an expired lease nobody took is honoured; nothing is lost
    assert undo(conn, 1, "mask", s).item.key == held[5]


def test_late_label_on_a_lease_someone_else_now_holds_is_409(env, make_client):
    a = make_client("ann1", overlap=0.0, lease_seconds=0.2)
    b = make_client("ann2", overlap=0.0, lease_seconds=60)
    k1, k2 = (i["key"] for i in a.post("/api/tasks/mask/next", json={"n": 2}).json()["items"])
    time.sleep(0.3)  # a's leases lapse
    assert [i["key"] for i in b.post("/api/tasks/mask/next", json={"n": 1}).json()["items"]] == [k1]
    r = a.post("/api/tasks/mask/label", json={"key": k1, "label": "good"})
    assert r.status_code == 409 and "fetch new samples" in r.json()["detail"]
    assert a.post("/api/tasks/mask/label", json={"key": k2, "label": "bad"}).status_code == 200  # nobody took k2
    assert b.post("/api/tasks/mask/label", json={"key": k1, "label": "bad"}).status_code == 200
    assert a.post("/api/tasks/mask/label", json={"key": k1, "label": "good"}).status_code == 409  # still refused
    votes = standing(env)
    assert votes[k1] == [("ann2", "bad")] and votes[k2] == [("ann1", "bad")]  # one label each, no conflict
    # the client's refill after a 409: held samples only, k1 not among them
    assert k1 not in {i["key"] for i in a.post("/api/tasks/mask/next", json={"n": 3}).json()["items"]}


def test_late_label_on_an_overlap_sample_with_room_is_honoured(env, make_client):
    a = make_client("ann1", overlap=1.0, lease_seconds=0.2)
    b = make_client("ann2", overlap=1.0, lease_seconds=60)
    c = make_client("ann3", overlap=1.0, lease_seconds=60)
    k = a.post("/api/tasks/inpaint/next", json={"n": 1}).json()["items"][0]["key"]
    time.sleep(0.3)
    assert b.post("/api/tasks/inpaint/next", json={"n": 1}).json()["items"][0]["key"] == k
    assert a.post("/api/tasks/inpaint/label", json={"key": k, "label": "good"}).status_code == 200  # 2 needed
    assert c.post("/api/tasks/inpaint/next", json={"n": 1}).json()["items"][0]["key"] != k  # k is full now
    assert b.post("/api/tasks/inpaint/label", json={"key": k, "label": "bad"}).status_code == 200
    assert sorted(standing(env, "inpaint")[k]) == [("ann1", "good"), ("ann2", "bad")]


def test_undoing_a_skip_never_gives_a_single_label_sample_a_second_label(env, make_client):
    """Issue 25 #10: A skips X, B is served X, A undoes: X must not come back to A, and never gets two labels."""
    a, b = make_client("ann1", overlap=0.0), make_client("ann2", overlap=0.0)
    x = a.post("/api/tasks/mask/next", json={"n": 1}).json()["items"][0]["key"]
    assert a.post("/api/tasks/mask/label", json={"key": x, "label": "skip"}).status_code == 200
    assert x in {i["key"] for i in b.post("/api/tasks/mask/next", json={"n": 12}).json()["items"]}
    r = a.post("/api/tasks/mask/undo", json={})
    assert r.status_code == 200, r.text
    assert r.json()["item"] is None and r.json()["gone"] == x and "another annotator" in r.json()["message"]
    assert x not in {i["key"] for i in a.post("/api/tasks/mask/next", json={"n": 12}).json()["items"]}
    r = a.post("/api/tasks/mask/label", json={"key": x, "label": "good"})
    assert r.status_code == 409
    assert b.post("/api/tasks/mask/label", json={"key": x, "label": "bad"}).status_code == 200
    assert standing(env)[x] == [("ann1", "undo"), ("ann2", "bad")]
    # the undo withdrew the skip, so the next Backspace walks back past it
    assert a.post("/api/tasks/mask/undo", json={}).status_code == 409


def test_a_live_lease_cannot_add_a_label_beyond_what_the_sample_needs(env):
    """Even if two annotators somehow hold a single-label sample, the second label is refused with 409."""
    conn = db.connect(env.db_path)
    s = Settings(overlap=0.0)
    x = next_items(conn, 1, "mask", 1, s)[0].key
    with db.write(conn):  # a second live lease on x, as the undo bug made
        conn.execute("INSERT INTO leases (sample_id, task, user_id, leased, expires)"
                     " SELECT id, 'mask', 2, 0, ? FROM samples WHERE key = ?", (time.time() + 60, x))
    record(conn, 2, "mask", x, "good", s)
    with pytest.raises(QueueError) as e:
        record(conn, 1, "mask", x, "bad", s)
    assert e.value.status == 409 and "already has" in str(e.value)
    record(conn, 2, "mask", x, "bad", s)  # the labeller may still change their own label


def test_a_resent_label_or_undo_is_acknowledged_once(env, make_client):
    """Issue 25 #11: the page resends a request whose response it lost; the server must not act twice."""
    a = make_client("ann1")
    k0, k1 = (i["key"] for i in a.post("/api/tasks/mask/next", json={"n": 2}).json()["items"])
    for _ in range(3):
        r = a.post("/api/tasks/mask/label", json={"key": k0, "label": "good", "id": "op-label-0001"})
        assert r.status_code == 200 and r.json()["progress"]["count"] == 1
    assert a.post("/api/tasks/mask/label", json={"key": k1, "label": "bad", "id": "op-label-0001"}).status_code == 409
    assert a.post("/api/tasks/mask/label", json={"key": k1, "label": "bad", "id": "op-label-0002"}).status_code == 200
    for _ in range(2):  # the same undo twice undoes one label, not two
        r = a.post("/api/tasks/mask/undo", json={"id": "op-undo-0003"})
        assert r.status_code == 200 and r.json()["item"]["key"] == k1 and r.json()["progress"]["count"] == 1
    assert a.post("/api/tasks/mask/label", json={"key": k0, "label": "good"}).status_code == 200  # no id: natural key
    conn = db.connect(env.db_path)
    history = [tuple(r) for r in conn.execute("SELECT s.key, e.value FROM events e JOIN samples s"
                                              " ON s.id = e.sample_id ORDER BY e.id")]
    assert history == [(k0, "good"), (k1, "bad"), (k1, "undo")]
    assert a.post("/api/tasks/mask/label", json={"key": k0, "label": "good", "id": "bad id!"}).status_code == 422
