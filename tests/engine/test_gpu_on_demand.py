"""Autoscaling from zero GPUs (issue 23): a job started on a cluster without a GPU asks for one anyway, its model
actors wait, and when a GPU node joins (here: a node declared with --num-gpus 1 on this CPU machine, as an
autoscaler would bring up) they start there and hold its GPU. Before, the ask was read off the cluster at
start, so the actors asked for no GPU and ran at once on the CPU head (ICON and SD2 on CPU pods)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WAITING = "they wait for a GPU node to join"


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(1)
    raise AssertionError(f"{text!r} not in the job's log: {path.read_text(errors='replace')[-3000:]}")


def _saliency_records(out: Path) -> list[dict]:
    recs = []
    for tar in sorted(out.glob("*.tar")):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                if m.name.endswith(".json"):
                    recs.append(json.loads(t.extractfile(m).read())["saliency"]["probe"])  # the ok samples
    return recs


@pytest.mark.slow
def test_gpu_actors_wait_for_and_land_on_a_gpu_node_that_joins_later(tmp_path, raw_dir, monkeypatch):
    sys.path.insert(0, str(ROOT / "infra"))
    from cluster_demo import LocalCluster

    # the nodes' workers import the probe backend; the nodes inherit this environment
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    (tmp_path / "cluster").mkdir()
    cluster = LocalCluster(tmp_path / "cluster", cpus_per_node=2)
    out, log = tmp_path / "l2i", tmp_path / "job.log"
    try:
        cluster.start(worker=False)  # the head only: CPUs, no GPU (KubeRay's GPU group at 0 pods)
        env = {**cluster.env, "RAY_ADDRESS": cluster.gcs_address}
        with open(log, "wb") as f:
            job = subprocess.Popen(
                [sys.executable, "-m", "l2i_pipeline.cli", "synthesize", "--input", str(raw_dir), "--output", str(out),
                 "--set", "saliency.backend=gpu_probe:ProbeSaliency", "--set", "inpaint.backend=telea",
                 "--set", "resolution=64", "--set", "output_shard_size=4"],
                cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
        try:
            _wait_for(log, WAITING, job, timeout=180)
            time.sleep(15)  # the job runs with its GPU actor pending: nothing may be synthesized meanwhile
            assert job.poll() is None, log.read_text()[-3000:]
            assert not list(out.glob("*_stats.json")), "samples were made before any GPU node existed"
            cluster.add_node("gpu", {"gpu_node": 1}, gpus=1)
            assert job.wait(timeout=300) == 0, log.read_text()[-3000:]
        finally:
            if job.poll() is None:
                job.kill()
        nodes = json.loads((listing := cluster.ray("list", "nodes", "--address", cluster.dashboard, "--format",
                                                   "json"))[listing.index("["):])
        gpu_nodes = {n["node_id"] for n in nodes if n.get("resources_total", {}).get("GPU")}
    finally:
        cluster.stop()
    assert len(gpu_nodes) == 1
    recs = _saliency_records(out)
    assert len(recs) == 11  # every ok sample of the 12 rows (one failed download)
    assert {r["node"] for r in recs} == gpu_nodes  # on the node that joined, none on the head
    assert {tuple(r["gpu_ids"]) for r in recs} == {("0",)}  # holding its GPU
    assert {r["cuda_visible_devices"] for r in recs} == {"0"}
