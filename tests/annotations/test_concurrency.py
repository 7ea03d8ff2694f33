"""Concurrent annotators against a real uvicorn server: every accepted label is stored, none twice-assigned."""
from __future__ import annotations

import threading
from collections import Counter

import httpx

from annotations import db


def annotate(base: str, token: str, label: str, barrier: threading.Barrier, accepted: list, errors: list) -> None:
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            r = c.post("/api/login", json={"token": token})
            r.raise_for_status()
            c.headers["X-CSRF-Token"] = r.json()["csrf"]
            barrier.wait(timeout=30)
            for _ in range(50):  # bounded: the pool has 12 samples
                items = c.post("/api/tasks/mask/next", json={"n": 2}).json()["items"]
                if not items:
                    return
                for item in items:
                    r = c.post("/api/tasks/mask/label", json={"key": item["key"], "label": label})
                    if r.status_code != 200:
                        errors.append((r.status_code, r.text))
                    else:
                        accepted.append((token, item["key"], label))
            errors.append("queue did not run dry")
    except Exception as e:  # noqa: BLE001 -- any failure in the thread is surfaced by the assertion below
        errors.append(repr(e))


def test_concurrent_annotators_lose_nothing(live_server):
    env = live_server.env
    names = ["ann1", "ann2", "ann3", "boss"]
    barrier = threading.Barrier(len(names))
    accepted: list = []
    errors: list = []
    threads = [threading.Thread(target=annotate, args=(live_server.url, env.tokens[n], "good" if i % 2 else "bad",
                                                        barrier, accepted, errors)) for i, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []

    conn = db.connect(env.db_path)
    stored = conn.execute("SELECT COUNT(*) FROM events WHERE task = 'mask'").fetchone()[0]
    assert stored == len(accepted)  # every accepted label is an event, no more, no less
    per_sample = Counter(k for k, in conn.execute(
        "SELECT s.key FROM current c JOIN samples s ON s.id = c.sample_id WHERE c.task = 'mask'"))
    required = {k: 2 if d < 0.5 else 1 for k, d in conn.execute("SELECT key, draw FROM samples")}
    assert dict(per_sample) == required  # the leases kept concurrent annotators from over-labeling
    pairs = conn.execute("SELECT user_id, sample_id, COUNT(*) FROM events GROUP BY user_id, sample_id").fetchall()
    assert all(n == 1 for *_, n in pairs)  # nobody was handed a sample twice
    latest = {r[0] for r in conn.execute("SELECT MAX(id) FROM events GROUP BY user_id, task, sample_id")}
    assert {r[0] for r in conn.execute("SELECT id FROM current")} == latest  # the derived index matches the log


def test_parallel_posts_of_one_annotator_are_all_stored(live_server):
    """Many labels posted at the same instant (prefetch + fast keys): all land, in the WAL, durably."""
    env = live_server.env
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        r = c.post("/api/login", json={"token": env.tokens["ann1"]})
        csrf, cookies = r.json()["csrf"], dict(c.cookies)
        c.headers["X-CSRF-Token"] = csrf
        items = c.post("/api/tasks/inpaint/next", json={"n": 12}).json()["items"]
    assert len(items) == 12
    barrier = threading.Barrier(len(items))
    codes: list = []

    def post(key: str) -> None:
        with httpx.Client(base_url=live_server.url, timeout=30, cookies=cookies,
                          headers={"X-CSRF-Token": csrf}) as cc:
            barrier.wait(timeout=30)
            codes.append(cc.post("/api/tasks/inpaint/label", json={"key": key, "label": "good"}).status_code)

    threads = [threading.Thread(target=post, args=(i["key"],)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert codes == [200] * 12
    conn = db.connect(env.db_path)
    assert conn.execute("SELECT COUNT(DISTINCT sample_id) FROM events WHERE task = 'inpaint'").fetchone()[0] == 12
