"""The driver's shard bookkeeping: duplicates, out-of-order arrival, retries, late records."""
from l2i_pipeline.core.inputshards import Unit
from l2i_pipeline.engine.tracker import UnitTracker


def _tracker():
    return UnitTracker({"a": Unit("a", "in", 0, 3), "b": Unit("b", "in", 3, 5)})


def test_a_shard_completes_once_when_all_its_keys_arrived_in_any_order():
    t = _tracker()
    assert t.add("b", "p1", ["b2"]) is None
    assert t.add("a", "p2", ["a3", "a1"]) is None
    assert t.add("b", "p3", ["b1"]).name == "b"
    assert t.add("a", "p4", ["a2"]).name == "a"
    assert t.take_parts("a") == ["p2", "p4"] and t.unfinished() == []


def test_retried_records_count_each_key_once():
    t = _tracker()
    assert t.add("a", "p1", ["a1", "a2"]) is None
    assert t.add("a", "p1", ["a1", "a2"]) is None  # the same task retried
    assert t.add("a", "p2", ["a2"]) is None  # a duplicate in another part
    assert t.add("a", "p3", ["a3"]).name == "a"
    assert t.take_parts("a") == ["p1", "p2", "p3"]


def test_a_late_duplicate_after_the_shard_was_finalized_is_ignored():
    t = _tracker()
    assert t.add("b", "p1", ["b1", "b2"]).name == "b"
    assert t.add("b", "p9", ["b2"]) is None  # arrived after the shard was handed out: not "never completed"
    assert t.unfinished() == ["a"]


def test_a_shard_with_an_unwritable_part_is_given_up_once_and_later_records_ignored():
    t = _tracker()
    assert t.add("a", "p1", ["a1"]) is None
    assert t.fail("a") is True and t.fail("a") is False
    assert t.add("a", "p2", ["a2", "a3"]) is None  # never finalized from a partial set of parts
    assert t.unfinished() == ["b"]
