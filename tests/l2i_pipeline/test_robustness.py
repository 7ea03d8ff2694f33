"""Issue 17, one test per class: no silent loss (duplicate keys), damaged inputs accounted for,
byte-identical resume after a kill."""
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rawshards import make_rows, output_members, write_raw_shard

from l2i_pipeline.core.shards import list_output_shards, read_output_index
from l2i_pipeline.engine.synthesize import synthesize
from stages.config import load_config

CFG = ["resolution=96", "output_shard_size=4", "layers.dilate_kernel=5"]


@pytest.mark.parametrize("runner", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_duplicate_keys_are_rejected_rows_and_every_shard_is_written(tmp_path, runner):
    rows = make_rows(8)
    rows.insert(5, {**rows[2], "caption": "the same key again"})  # the parquet index repeats a key
    write_raw_shard(tmp_path / "raw", "00000", rows)
    try:
        summary = synthesize(tmp_path / "raw", tmp_path / "l2i", load_config(None, CFG), runner=runner, num_cpus=2)
    finally:
        if runner == "ray":
            import ray

            ray.shutdown()
    assert list_output_shards(tmp_path / "l2i") == ["00000_0000", "00000_0001", "00000_0002"]
    assert summary["shards_written"] == 3 and summary["samples"] == 9
    assert summary["reasons"].get("input:duplicate_key") == 1
    index = {r["key"]: r for r in read_output_index(tmp_path / "l2i").to_pylist()}
    dup = index["000000002#2"]
    assert dup["status"] == "rejected" and dup["reason"] == "input:duplicate_key"
    assert index["000000002"]["status"] == "ok"  # the first occurrence is processed as usual
    # a rerun has nothing left to do
    again = synthesize(tmp_path / "raw", tmp_path / "l2i", load_config(None, CFG), runner="local")
    assert again["shards_written"] == 0 and again["shards_skipped"] == 3


def _cut_inside(tar: Path, member_index: int) -> None:
    """Cut the tar halfway through the data of one member."""
    with tarfile.open(tar) as tf:
        m = tf.getmembers()[member_index]
    tar.write_bytes(tar.read_bytes()[: m.offset_data + m.size // 2])


@pytest.mark.parametrize("with_parquet", [True, False])
@pytest.mark.parametrize("member", ["first", "last"])  # of the tar's last sample (jpg, txt, json)
def test_damaged_tar_loses_only_the_cut_sample_and_says_so(tmp_path, with_parquet, member):
    raw = tmp_path / "raw"
    write_raw_shard(raw, "00000", make_rows(5))
    _cut_inside(raw / "00000.tar", -3 if member == "first" else -1)
    if not with_parquet:
        (raw / "00000.parquet").unlink()
    summary = synthesize(raw, tmp_path / "l2i", load_config(None, CFG), runner="local")
    assert summary["samples"] == 5 and summary["reasons"] == {"input:truncated_tar": 1}
    index = {r["key"]: r for r in read_output_index(tmp_path / "l2i").to_pylist()}
    assert index["000000004"]["reason"] == "input:truncated_tar"  # the cut sample, recorded
    assert "ReadError" in index["000000004"]["meta"]  # with the damage it found
    assert all(index[f"00000000{i}"]["reason"] != "input:truncated_tar" for i in range(4))  # intact ones kept
    stats = [pq.read_table(tmp_path / "l2i" / f"{n}.parquet") for n in list_output_shards(tmp_path / "l2i")]
    assert sum(t.num_rows for t in stats) == 5


# ---------------------------------------------------------------- byte-identical resume

def _cmd(raw: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "l2i_pipeline.cli", "synthesize", "--input", str(raw), "--output", str(out),
            "--runner", "local", "--set", "resolution=96", "--set", "output_shard_size=4",
            "--set", "layers.dilate_kernel=5"]


def test_killed_and_rerun_writes_the_same_bytes_as_an_uninterrupted_run(tmp_path):
    raw = tmp_path / "raw"
    rows = make_rows(48)
    for i in range(12):  # twelve input units: the model batches cross units, so a small job's units all finish
        write_raw_shard(raw, f"{i:05d}", rows[4 * i: 4 * i + 4])  # in the last batch; these commit in ~3 waves
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(_cmd(raw, tmp_path / "clean"), check=True, capture_output=True, timeout=300, env=env)
    out = tmp_path / "resumed"
    proc = subprocess.Popen(_cmd(raw, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    deadline = time.time() + 300
    while not list(out.glob("*_stats.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    written_before_kill = len(list(out.glob("*_stats.json")))
    assert 1 <= written_before_kill < 12, "the kill must land mid-run for this test to mean anything"
    subprocess.run(_cmd(raw, out), check=True, capture_output=True, timeout=300, env=env)
    clean, resumed = output_members(tmp_path / "clean"), output_members(out)
    assert sorted(clean) == sorted(resumed)
    assert [k for k in clean if clean[k] != resumed[k]] == []
