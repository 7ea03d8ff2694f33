"""The output lock's owner id: a RayJob retry (same L2I_LOCK_OWNER) takes over the lock its dead driver left."""
from __future__ import annotations

import json
import time

import pytest

from l2i_pipeline.core.lock import LOCK, OWNER_ENV, LockedError, output_lock
from l2i_pipeline.core.storage import open_store

OWNER = "rayjob/default/l2i-synthesize"


def left_by_dead_driver(out, owner):
    """The lock a driver on a now-deleted pod left a second ago: another host, fresh refresh, so never stale."""
    out.makedirs()
    out.put(LOCK, json.dumps({"id": "old", "command": "synthesize", "host": "l2i-synthesize-abcde-head",
                              "pid": 77, "owner": owner, "started": time.time(),
                              "refreshed": time.time()}).encode())


def test_a_retry_of_the_same_rayjob_takes_the_lock_over(tmp_path, monkeypatch):
    out = open_store(tmp_path / "out")
    left_by_dead_driver(out, OWNER)
    monkeypatch.setenv(OWNER_ENV, OWNER)
    with output_lock(out, "synthesize") as lock_id:
        held = json.loads(out.get(LOCK))
        assert held["id"] == lock_id != "old" and held["owner"] == OWNER
    assert not out.exists(LOCK)


@pytest.mark.parametrize("mine", [None, "rayjob/default/l2i-download", "rayjob/other-ns/l2i-synthesize"])
def test_any_other_job_is_still_refused(tmp_path, monkeypatch, mine):
    out = open_store(tmp_path / "out")
    left_by_dead_driver(out, OWNER)
    if mine is None:
        monkeypatch.delenv(OWNER_ENV, raising=False)
    else:
        monkeypatch.setenv(OWNER_ENV, mine)
    with pytest.raises(LockedError, match="another `l2i synthesize` is writing"):
        with output_lock(out, "synthesize"):
            pass
    assert json.loads(out.get(LOCK))["id"] == "old"


def test_a_lock_without_owner_is_not_taken_over_by_an_owned_job(tmp_path, monkeypatch):
    out = open_store(tmp_path / "out")
    left_by_dead_driver(out, None)
    monkeypatch.setenv(OWNER_ENV, OWNER)
    with pytest.raises(LockedError):
        with output_lock(out, "synthesize"):
            pass
