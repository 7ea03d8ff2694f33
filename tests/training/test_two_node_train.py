"""`l2i train ae --runner ray --out s3://...` on a Ray cluster of separate nodes on 127.0.0.1 (moto's S3 server
on loopback), each node with its own working dir (L2I_RUN_CACHE) and the bucket the only thing they share.
Killed with -9 twice, separately: the driver (rerun: it resumes from the bucket), and the node running the
training workers (the driver's restart places them on a node that joins after, which resumes from the bucket
too). Both exports equal an uninterrupted run's, byte for byte (sha256)."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l2i_pipeline.core.storage import open_store

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = "ae/diffusion_pytorch_model.safetensors"
FIRST = "checkpoints/step_0000025.done.json"
LAST = "checkpoints/step_0000200.done.json"  # the export is committed with every checkpoint


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wait(cond, proc: subprocess.Popen, log: Path, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen; the driver's log: {log.read_text(errors='replace')[-3000:]}")


def _settled(store, quiet: float = 15.0, timeout: float = 180.0) -> None:
    """Wait until the store's committed checkpoints stop changing for `quiet` s (Ray ends a killed driver's
    workers within seconds; until then they may still commit)."""
    deadline, last, since = time.time() + timeout, None, time.time()
    while time.time() < deadline:
        now = sorted(store.child("checkpoints").list(".done.json"))
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            return
        time.sleep(1)
    raise AssertionError(f"commits to {store.url} did not stop within {timeout:.0f} s")


@pytest.mark.slow
def test_train_into_a_bucket_survives_kill_9_of_the_driver_and_of_a_worker_node(l2i_dir, s3_bucket, tmp_path):
    sys.path.insert(0, str(ROOT / "infra"))
    from cluster_demo import LocalCluster

    (tmp_path / "cluster").mkdir()
    cluster = LocalCluster(tmp_path / "cluster", cpus_per_node=2)

    def cache(node: str) -> dict:
        return {"L2I_RUN_CACHE": str(tmp_path / f"cache-{node}")}

    def driver(out: str, name: str) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"{name}.log"
        cmd = [sys.executable, "-m", "l2i_pipeline.cli", "train", "ae", "--runner", "ray", "--workers", "2",
               "--ray-address", cluster.gcs_address, "--preset", "tiny", "--data", str(l2i_dir), "--out", out,
               "--set", "train.steps=200", "--set", "ckpt.every=25", "--set", "ckpt.keep=2",
               "--set", "data.num_workers=0", "--set", "log.progress=false", "--set", "train.device=cpu"]
        env = {**cluster.env, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **cache("driver")}
        with open(log, "wb") as f:
            return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True), log

    def finish(proc: subprocess.Popen, log: Path) -> None:
        assert proc.wait(timeout=900) == 0, log.read_text(errors="replace")[-3000:]

    try:
        # the head has one CPU, so the two 1-CPU training workers cannot both live there
        cluster.start(worker=False, cpus=1, env=cache("head"))
        cluster.add_node("w1", {"w1": 1}, cpus=2, env=cache("w1"))
        finish(*driver(f"{s3_bucket}/clean", "clean"))
        want = _sha(open_store(f"{s3_bucket}/clean").get(WEIGHTS))

        # 1. kill -9 of the driver after its first committed checkpoint; the rerun resumes from the bucket
        out = f"{s3_bucket}/driver-killed"
        store = open_store(out)
        proc, log = driver(out, "driver-killed")
        _wait(lambda: store.exists(FIRST), proc, log, 600, "the first checkpoint commit")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        _settled(store)  # the dead driver's workers are gone once the commits stop
        assert not store.exists(LAST), "the kill must land mid-run for this test to mean anything"
        proc, log = driver(out, "driver-rerun")
        finish(proc, log)
        assert "trained steps 0 ->" not in log.read_text(errors="replace"), "the rerun resumed from the bucket"
        assert _sha(store.get(WEIGHTS)) == want

        # 2. kill -9 of the node running the training workers; a new node joins and the run goes on
        out = f"{s3_bucket}/node-killed"
        store = open_store(out)
        proc, log = driver(out, "node-killed")
        _wait(lambda: store.exists(FIRST), proc, log, 600, "the first checkpoint commit")
        cluster.kill_node(1)  # w1: its raylet and its workers, all at once
        assert not store.exists(LAST), "the kill must land mid-run for this test to mean anything"
        cluster.add_node("w2", {"w2": 1}, cpus=2, env=cache("w2"))
        finish(proc, log)
        assert "restart 1/" in log.read_text(errors="replace"), "the worker group was restarted"
        assert _sha(store.get(WEIGHTS)) == want
    finally:
        cluster.stop()
    # every process worked in its own node's dir: the ranks' copies are under w1's and w2's, none elsewhere
    ranks = {p.parent.parent.name for p in tmp_path.glob("cache-*/*/rank*")}
    assert {"cache-w1", "cache-w2"} <= ranks and "cache-driver" not in ranks
