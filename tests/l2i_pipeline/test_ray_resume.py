"""On Ray, kill -9 (driver or worker) + rerun loses/duplicates nothing."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rawshards import make_rows, write_raw_shard

from l2i_pipeline.core.shards import list_output_shards, read_output_index, read_tar

ARGS = ["--set", "resolution=192", "--set", "output_shard_size=2", "--set", "layers.dilate_kernel=5"]


def _cmd(raw: Path, out: Path, runner: str = "ray") -> list[str]:
    return [sys.executable, "-m", "l2i_pipeline.cli", "synthesize", "--input", str(raw), "--output", str(out),
            "--runner", runner, "--num-cpus", "2", *ARGS]


def _keys(out: Path) -> tuple[list[str], list[str]]:
    """(keys in the parquet indexes, keys of ok samples in the tars), sorted, duplicates kept."""
    index = sorted(read_output_index(out).column("key").to_pylist())
    tars = sorted(k for n in list_output_shards(out) for k in read_tar(out / f"{n}.tar").members)
    return index, tars


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("raw")
    for shard in range(3):
        write_raw_shard(d, f"{shard:05d}", make_rows(10, shard=shard, extra={
            2: {"status": "failed_to_download", "error_message": "timeout", "image": None}}))
    return d


@pytest.fixture(scope="module")
def reference(raw, tmp_path_factory) -> tuple[list[str], list[str]]:
    out = tmp_path_factory.mktemp("ref")
    subprocess.run(_cmd(raw, out, "local"), check=True, capture_output=True, timeout=600)
    return _keys(out)


def _run_and_kill(cmd: list[str], out: Path, victim: str) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while len(list(out.glob("*_stats.json"))) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        if victim == "driver":
            os.kill(proc.pid, signal.SIGKILL)
        else:  # a Ray worker running our stages
            pids = subprocess.run(["pgrep", "-s", str(proc.pid), "-f", "ray::"], capture_output=True,
                                  text=True).stdout.split()
            if pids:
                os.kill(int(pids[0]), signal.SIGKILL)
        proc.wait(timeout=300)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever Ray left of the session
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("victim", ["driver", "worker"])
def test_kill_then_rerun_gives_the_uninterrupted_key_set(raw, reference, tmp_path, victim):
    out = tmp_path / "l2i"
    _run_and_kill(_cmd(raw, out), out, victim)
    done_before = len(list_output_shards(out))
    assert done_before < 15 or victim == "worker"  # the driver really died mid-run
    rerun = subprocess.run(_cmd(raw, out), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    index, tars = _keys(out)
    assert index == reference[0] and len(set(index)) == 30  # every input row once
    assert tars == reference[1]  # same ok samples, none duplicated
    assert len(list_output_shards(out)) == 15
    rejected = [r for r in read_output_index(out).to_pylist() if r["status"] == "rejected"]
    assert {r["reason"] for r in rejected} >= {"download:timeout"}
    a = pq.read_table(out / "00001_0002.parquet").to_pylist()  # chunking is deterministic
    assert {r["key"] for r in a} == {"000010004", "000010005"}

