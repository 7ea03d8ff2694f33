"""Stats: Cohen's kappa against hand-computed values; the admin endpoint's counts and disagreements."""
from __future__ import annotations

import pytest

from annotations import db
from annotations.queue import Settings, next_items, record
from annotations.stats import active_hours, cohen_kappa


def test_cohen_kappa_known_values():
    # 2x2 table: both good 20, A good/B bad 5, A bad/B good 10, both bad 15 -> kappa 0.4 (textbook example)
    pairs = [("good", "good")] * 20 + [("good", "bad")] * 5 + [("bad", "good")] * 10 + [("bad", "bad")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("good", "good"), ("bad", "bad")]) == pytest.approx(1.0)
    assert cohen_kappa([("good", "bad"), ("bad", "good")]) == pytest.approx(-1.0)
    assert cohen_kappa([("good", "good")] * 3) is None  # chance agreement 1: undefined
    assert cohen_kappa([]) is None


def test_active_hours_ignores_breaks():
    assert active_hours([0, 10, 20, 20 + 3600]) == pytest.approx((10 + 10 + 300) / 3600)


def test_stats_endpoint(env, make_client):
    conn = db.connect(env.db_path)
    s = Settings(overlap=1.0)
    u = {n: i for i, n in conn.execute("SELECT id, name FROM users")}
    keys = [i.key for i in next_items(conn, u["ann1"], "mask", 4, s)]
    assert [i.key for i in next_items(conn, u["ann2"], "mask", 4, s)] == keys
    for key, a, b in zip(keys, ["good", "good", "bad", "bad"], ["good", "bad", "bad", "bad"]):
        record(conn, u["ann1"], "mask", key, a)
        record(conn, u["ann2"], "mask", key, b)
    st = make_client("boss", overlap=1.0).get("/api/stats").json()
    mask = next(t for t in st["tasks"] if t["task"] == "mask")
    assert (mask["labels"], mask["good"], mask["bad"], mask["pairs"], mask["agreement"]) == (8, 3, 5, 4, 0.75)
    assert mask["kappa"] == pytest.approx(0.5)  # po .75, pe .5
    assert [d["key"] for d in mask["disagreements"]] == [keys[1]]
    assert {a["annotator"]: a["labels"] for a in mask["annotators"]} == {"ann1": 4, "ann2": 4}
    assert mask["overlap_samples"] == mask["pool"] == 12
