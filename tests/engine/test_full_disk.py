"""Issue 25 item 18: a full disk (ENOSPC on a store write) leaves no hidden `.tmp` files and no `_parts/`
behind: the failing write removes its temp file, and the job removes the parts when it ends."""
from __future__ import annotations

import errno
import os

import pytest

from l2i_pipeline.core import storage
from l2i_pipeline.engine import synthesize as job
from l2i_pipeline.engine.synthesize import ShardsFailed, synthesize
from stages.config import load_config

CFG = ["resolution=96", "output_shard_size=4"]


def _leftovers(out) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if ".tmp" in p.name or "_parts" in p.parts)


def test_a_full_disk_leaves_no_temp_files(raw_dir, tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if ".tar.tmp" in os.readlink(f"/proc/self/fd/{fd}"):  # the shard tars: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(storage.os, "fsync", fsync)
    out = tmp_path / "l2i"
    with pytest.raises(ShardsFailed) as e:
        synthesize(raw_dir, out, load_config(None, CFG), runner="local")
    assert len(e.value.summary["failed"]) == 4
    assert _leftovers(out) == []


def test_parts_are_removed_when_a_job_fails(raw_dir, tmp_path, monkeypatch):
    """As the Ray runner does: parts written, then the shard's commit fails (ENOSPC); no `_parts/` stays."""
    from l2i_pipeline.core.sample import Sample
    from l2i_pipeline.engine.writer import write_parts

    def run_then_fail(cfg, raw, out, units, extra, on_shard):
        write_parts(out, [Sample("k0", units[0].name, meta={}).reject("decode:broken")])
        assert _leftovers(tmp_path / "l2i")  # the part is there while the job runs
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(job, "run_local", run_then_fail)
    with pytest.raises(OSError, match="No space left"):
        synthesize(raw_dir, tmp_path / "l2i", load_config(None, CFG), runner="local")
    assert _leftovers(tmp_path / "l2i") == []
