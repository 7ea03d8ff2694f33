"""A store that fails mid-write: transient errors are retried; a shard that cannot be written stays
unmarked, is named in the summary, the job exits non-zero, and the rerun completes it. Nothing is lost."""
from __future__ import annotations

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem

from l2i_pipeline.cli import main
from l2i_pipeline.core import storage
from l2i_pipeline.core.shards import list_output_shards, read_output_index
from l2i_pipeline.engine.synthesize import ShardsFailed, synthesize
from stages.config import load_config

CFG = ["resolution=96", "output_shard_size=4"]


class FlakyFS(LocalFileSystem):
    """Local files behind a `flaky://` URL whose uploads fail as FAIL says (in-process only)."""

    protocol = "flaky"
    root_marker = "/"
    fail: dict[str, int] = {}  # object-name substring -> failures left (-1: always)
    calls: list[str] = []

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(path.replace("flaky://", "/", 1) if path.startswith("flaky://") else path)

    def pipe_file(self, path, value, mode="overwrite", **kwargs):
        for part, left in self.fail.items():
            if part in path and left != 0:
                self.fail[part] = left - 1 if left > 0 else -1
                self.calls.append(path)
                raise ConnectionError(f"connection reset by peer while writing {path}")
        self.makedirs(self._parent(path), exist_ok=True)
        with open(path, "xb" if mode == "create" else "wb") as f:
            f.write(value)


@pytest.fixture(autouse=True)
def flaky(monkeypatch):
    fsspec.register_implementation("flaky", FlakyFS, clobber=True)
    monkeypatch.setattr(storage, "BACKOFF_S", 0.001)
    FlakyFS.fail, FlakyFS.calls = {}, []
    yield FlakyFS


def _keys(out) -> dict:
    return {r["key"]: (r["status"], r["reason"]) for r in read_output_index(out).to_pylist()}


def test_transient_upload_errors_are_retried(raw_dir, tmp_path, flaky):
    flaky.fail = {"00000_0001.tar": 2, "00001_0000_stats.json": 1}
    summary = synthesize(raw_dir, f"flaky://{tmp_path}/out", load_config(None, CFG), runner="local")
    assert not summary["failed"] and summary["shards_written"] == 4
    assert len(flaky.calls) == 3
    assert sorted(list_output_shards(tmp_path / "out")) == ["00000_0000", "00000_0001", "00001_0000", "00001_0001"]


def test_a_shard_the_store_keeps_refusing_is_named_and_redone_by_the_rerun(raw_dir, tmp_path, flaky, capsys):
    reference = tmp_path / "ref"
    synthesize(raw_dir, reference, load_config(None, CFG), runner="local")
    flaky.fail = {"00000_0001.parquet": -1}
    out = f"flaky://{tmp_path}/out"
    with pytest.raises(ShardsFailed) as e:
        synthesize(raw_dir, out, load_config(None, CFG), runner="local")
    assert e.value.summary["failed"] == ["00000_0001"] and e.value.summary["shards_written"] == 3
    assert "00000_0001" not in list_output_shards(tmp_path / "out")  # no marker: invisible to readers
    args = ["synthesize", "--input", str(raw_dir), "--output", out, "--runner", "local"] + \
        [x for c in CFG for x in ("--set", c)]
    assert main(args) == 1
    assert "NOT written (1" in capsys.readouterr().out
    flaky.fail = {}
    assert main(args) == 0
    assert _keys(tmp_path / "out") == _keys(reference)


def test_a_part_the_store_refuses_becomes_an_error_record_not_a_crash(tmp_path, flaky):
    """The Ray path's part writer: a refused upload is reported (the driver names the shard), never raised."""
    from l2i_pipeline.core.sample import Sample
    from l2i_pipeline.core.storage import open_store
    from l2i_pipeline.engine.writer import write_parts

    samples = [Sample(f"k{i}", "u1" if i < 2 else "u2", meta={}).reject("decode:broken") for i in range(4)]
    flaky.fail = {"_parts/u1/": -1}
    records = {r["unit"]: r for r in write_parts(open_store(f"flaky://{tmp_path}/out"), samples)}
    assert "ConnectionError" in records["u1"]["error"] and records["u1"]["part"] == ""  # in the StorageError line
    assert records["u2"]["error"] == "" and records["u2"]["keys"] == ["k2", "k3"]
    assert (tmp_path / "out" / records["u2"]["part"]).exists()
