"""`l2i train ae --runner ray --out s3://...` on a Ray cluster of separate nodes on 127.0.0.1 (moto's S3 server
on loopback), each node with its own working dir (L2I_RUN_CACHE) and the bucket the only thing they share.
Killed with -9 twice: (1) the driver together with the node running its training workers (a preemption: only
the head and the bucket survive; Ray Train's workers outlive a driver killed alone and finish the run, seen
here), then a new node joins and the rerun resumes from the bucket's last checkpoint; (2) only the node of the
training workers, while the driver lives: its restart places them on a node that joins after, which resumes
from the bucket too. Both exports equal an uninterrupted run's, byte for byte (sha256)."""
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

        # 1. kill -9 of the driver and of the node of its workers, after the first committed checkpoint
        out = f"{s3_bucket}/killed"
        store = open_store(out)
        proc, log = driver(out, "killed")
        _wait(lambda: store.exists(FIRST), proc, log, 600, "the first checkpoint commit")
        assert not store.exists("ae.done.json"), "the kill must land mid-run for this test to mean anything"
        os.killpg(proc.pid, signal.SIGKILL)
        os.killpg(cluster.procs[1].pid, signal.SIGKILL)  # w1: its raylet and its workers, all at once
        proc.wait(timeout=60)
        cluster.add_node("w2", {"w2": 1}, cpus=2, env=cache("w2"))
        proc, log = driver(out, "rerun")
        finish(proc, log)
        assert "trained steps 0 ->" not in log.read_text(errors="replace"), "the rerun resumed from the bucket"
        assert _sha(store.get(WEIGHTS)) == want

        # 2. kill -9 of the node running the training workers only; a new node joins and the run goes on
        out = f"{s3_bucket}/node-killed"
        store = open_store(out)
        proc, log = driver(out, "node-killed")
        _wait(lambda: store.exists(FIRST), proc, log, 600, "the first checkpoint commit")
        os.killpg(cluster.procs[2].pid, signal.SIGKILL)  # w2
        assert not store.exists("ae.done.json"), "the kill must land mid-run for this test to mean anything"
        cluster.add_node("w3", {"w3": 1}, cpus=2, env=cache("w3"))
        finish(proc, log)
        assert "restart 1/" in log.read_text(errors="replace"), "the worker group was restarted"
        assert _sha(store.get(WEIGHTS)) == want
    finally:
        cluster.stop()
    # every process worked in its own node's dir: the ranks' copies are under w1's and w2's, none elsewhere
    ranks = {p.parent.parent.name for p in tmp_path.glob("cache-*/*/rank*")}
    assert {"cache-w2", "cache-w3"} <= ranks and "cache-driver" not in ranks
