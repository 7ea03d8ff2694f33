"""The output lock refuses a store whose conditional create does not work; --no-lock runs without it."""
import json

import pytest
from fakestores import new_url

from l2i_pipeline.cli import main
from l2i_pipeline.core.lock import LOCK, PROBE, LockedError, NoExclusiveCreate, output_lock
from l2i_pipeline.core.shards import read_output_index
from l2i_pipeline.core.storage import open_store


def test_a_store_that_overwrites_on_create_is_refused_and_the_probe_removed():
    out = open_store(new_url())
    with pytest.raises(NoExclusiveCreate, match="this store does not support exclusive creates .*use --no-lock"):
        with output_lock(out, "synthesize"):
            pass
    assert not [n for n in out.list() if n.startswith(PROBE)] and not out.exists(LOCK)


def test_a_store_with_exclusive_creates_passes_the_probe_and_is_exclusive(tmp_path):
    out = open_store(f"memory://l2i-lock-{tmp_path.name}")  # memory:// honours mode="create"
    with output_lock(out, "synthesize"):
        assert out.exists(LOCK) and not [n for n in out.list() if n.startswith(PROBE)]
        with pytest.raises(LockedError, match="another `l2i synthesize`"):
            with output_lock(out, "synthesize"):
                pass
    assert not out.exists(LOCK)


def test_synthesize_refuses_such_a_store_in_one_line_and_runs_with_no_lock(raw_dir, capsys):
    url = new_url()
    argv = ["synthesize", "--input", str(raw_dir), "--output", url, "--runner", "local", "--set", "resolution=96"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not support exclusive creates" in err and "--no-lock" in err
    out = open_store(url)
    assert not out.exists("run.json")  # refused before any work
    assert main([*argv, "--no-lock"]) == 0
    assert len(read_output_index(out).to_pylist()) == 12 and not out.exists(LOCK)
    assert json.loads(out.get("run.json"))["input"] == str(raw_dir)


def test_a_disabled_lock_takes_nothing_and_writes_nothing(tmp_path):
    # `--no-lock` of every command goes through output_lock(enabled=False): no probe, no lock object
    from l2i_pipeline.core.lock import output_lock
    from l2i_pipeline.core.storage import open_store

    out = open_store(tmp_path / "out")
    with output_lock(out, "synthesize", enabled=False) as held:
        assert held is None
        with output_lock(out, "synthesize") as other:  # nothing held: a locked job still gets in
            assert other
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []
