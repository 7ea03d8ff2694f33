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
        record(conn, u["ann1"], "mask", key, a, s)
        record(conn, u["ann2"], "mask", key, b, s)
    boss = make_client("boss", overlap=1.0)
    st = boss.get("/api/stats").json()
    mask = next(t for t in st["tasks"] if t["task"] == "mask")
    d = mask["disagreements"][0]  # its thumbnail URL is signed for the admin's session (issue 25 #12)
    assert boss.get("/img/mask", params={"key": d["key"], "sig": d["sig"]}).status_code == 200
    assert (mask["labels"], mask["good"], mask["bad"], mask["pairs"], mask["agreement"]) == (8, 3, 5, 4, 0.75)
    assert mask["kappa"] == pytest.approx(0.5)  # po .75, pe .5
    assert [d["key"] for d in mask["disagreements"]] == [keys[1]]
    assert {a["annotator"]: a["labels"] for a in mask["annotators"]} == {"ann1": 4, "ann2": 4}
    assert mask["overlap_samples"] == mask["pool"] == 12


# hand case: A = 6 good / 4 bad, B = 4 good / 6 bad, 8 agreements (4 good/good, 4 bad/bad, 2 A good/B bad)
# po = 0.8, pe = 0.6 * 0.4 + 0.4 * 0.6 = 0.48, kappa = 0.32 / 0.52 = 0.615
HAND_A = ["good"] * 4 + ["bad"] * 4 + ["good"] * 2
HAND_B = ["good"] * 4 + ["bad"] * 4 + ["bad"] * 2


@pytest.mark.parametrize("first", ["ann1", "ann2", "ann2 on one disagreement"])
def test_kappa_per_pair_does_not_depend_on_who_labels_first(env, make_client, first):
    """Pooling (earlier, later) pairs gave 0.600 when B labelled one disagreement first; per pair it is 0.615."""
    a, b = make_client("ann1", overlap=1.0), make_client("ann2", overlap=1.0)
    keys = [i["key"] for i in a.post("/api/tasks/mask/next", json={"n": 10}).json()["items"]]
    assert [i["key"] for i in b.post("/api/tasks/mask/next", json={"n": 10}).json()["items"]] == keys
    for i, key in enumerate(keys):
        b_first = first == "ann2" or (first != "ann1" and i == 8)  # samples 8 and 9 are the disagreements
        for client, labels in ([(b, HAND_B), (a, HAND_A)] if b_first else [(a, HAND_A), (b, HAND_B)]):
            assert client.post("/api/tasks/mask/label", json={"key": key, "label": labels[i]}).status_code == 200
    mask = next(t for t in make_client("boss", overlap=1.0).get("/api/stats").json()["tasks"] if t["task"] == "mask")
    (pair,) = mask["kappa_pairs"]
    assert (pair["a"], pair["b"], pair["samples"], pair["agreements"], pair["a_good"], pair["b_good"]) == \
        ("ann1", "ann2", 10, 8, 6, 4)
    assert pair["table"] == {"good/good": 4, "good/bad": 2, "bad/good": 0, "bad/bad": 4}
    assert pair["kappa"] == 0.615 and mask["kappa"] == 0.615 and mask["kappa_kind"] == "cohen"
    assert mask["fleiss"] is None  # two annotators: Cohen's kappa is the figure


def test_fleiss_kappa_known_values():
    from collections import Counter

    from annotations.stats import fleiss_kappa

    # 3 raters, 4 samples: P = (1 + 1 + 1/3 + 1/3) / 4 = 2/3, pe = 0.5 -> 1/3
    counts = [Counter(good=3), Counter(bad=3), Counter(good=2, bad=1), Counter(good=1, bad=2)]
    assert fleiss_kappa(counts) == pytest.approx(1 / 3)
    assert fleiss_kappa([Counter(good=2), Counter(good=2)]) is None
    assert fleiss_kappa([Counter(good=1)]) is None


def test_fleiss_kappa_when_more_than_two_annotators_overlap(env, make_client):
    conn = db.connect(env.db_path)
    s = Settings(overlap=1.0)
    u = {n: i for i, n in conn.execute("SELECT id, name FROM users")}
    first = [i.key for i in next_items(conn, u["ann1"], "mask", 4, s)]
    assert [i.key for i in next_items(conn, u["ann2"], "mask", 4, s)] == first
    second = [i.key for i in next_items(conn, u["ann3"], "mask", 4, s)]
    assert [i.key for i in next_items(conn, u["ann2"], "mask", 8, s)] == first + second
    plan = {"ann1": zip(first, "ggbb"), "ann2": zip(first + second, "gbbbgggb"), "ann3": zip(second, "ggbb")}
    for name, labels in plan.items():
        for key, x in labels:
            record(conn, u[name], "mask", key, "good" if x == "g" else "bad", s)
    mask = next(t for t in make_client("boss", overlap=1.0).get("/api/stats").json()["tasks"] if t["task"] == "mask")
    # per sample: 2g, 1-1, 2b, 2b, 2g, 2g, 1-1, 2b -> P = 6/8, pe = 0.5 -> kappa 0.5
    assert mask["fleiss"] == {"kappa": 0.5, "samples": 8, "raters": 3, "ratings": 16}
    assert mask["kappa"] == 0.5 and mask["kappa_kind"] == "fleiss"
    assert [(p["a"], p["b"], p["samples"]) for p in mask["kappa_pairs"]] == [("ann1", "ann2", 4), ("ann2", "ann3", 4)]
