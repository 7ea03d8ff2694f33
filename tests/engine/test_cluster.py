"""Proof at cluster scale on one machine: workers write to local disk or to an S3-compatible server on
127.0.0.1, a worker node is removed mid-run, the driver is killed with -9 and rerun. Each must end with
the key set and statuses of an uninterrupted single-process run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rawshards import make_rows, output_members, write_raw_shard

from l2i_pipeline.core.errors import NotFound, StorageError
from l2i_pipeline.core.shards import complete_shards, read_output_index
from l2i_pipeline.core.storage import open_store
from l2i_pipeline.engine.synthesize import synthesize
from stages.config import load_config

CFG = ["resolution=96", "output_shard_size=4", "saliency.batch_size=2", "inpaint.batch_size=2", "read_tasks=2"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def raw_many(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("raw_many")
    for shard in range(3):
        write_raw_shard(d, f"{shard:05d}", make_rows(8, shard=shard, extra={2: {"status": "failed_to_download",
                                                                                  "error_message": "HTTP 404",
                                                                                  "image": None}}))
    return d


@pytest.fixture(scope="module")
def reference_dir(raw_many, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    synthesize(raw_many, out, load_config(None, CFG), runner="local")
    return out


@pytest.fixture(scope="module")
def reference(reference_dir) -> dict:
    return _result(reference_dir)


def _result(out) -> dict:
    rows = read_output_index(out).to_pylist()
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)), "a sample was written twice"
    return {r["key"]: (r["status"], r["reason"]) for r in rows}


def _upload(local: Path, url: str) -> None:
    store = open_store(url)
    for p in sorted(local.iterdir()):
        store.put(p.name, p.read_bytes())


def _shutdown_ray():
    import ray

    if ray.is_initialized():
        ray.shutdown()


def test_s3_in_and_out_on_ray_equals_the_single_process_run(raw_many, reference, s3_bucket):
    _upload(raw_many, f"{s3_bucket}/raw")
    _shutdown_ray()
    try:
        summary = synthesize(f"{s3_bucket}/raw", f"{s3_bucket}/l2i", load_config(None, CFG), runner="ray", num_cpus=2)
    finally:
        _shutdown_ray()
    assert summary["shards_written"] == 6 and not summary["failed"]
    assert _result(f"{s3_bucket}/l2i") == reference
    out = open_store(f"{s3_bucket}/l2i")
    assert not out.exists("_lock.json") and not [n for n in out.fs.find(out.root) if "/_parts/" in n]


def test_missing_bucket_and_missing_input_fail_before_any_work(raw_many, s3_server, tmp_path):
    with pytest.raises(StorageError, match="cannot write to s3://no-such-bucket-here"):
        synthesize(raw_many, "s3://no-such-bucket-here/out", load_config(None, CFG), runner="local")
    with pytest.raises(NotFound, match="input not found"):
        synthesize(tmp_path / "nothing", tmp_path / "out", load_config(None, CFG), runner="local")
    assert not (tmp_path / "out" / "run.json").exists()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "l2i_pipeline.cli", "synthesize", *args] + [x for c in CFG for x in ("--set", c)]


@pytest.mark.slow
def test_kill_9_of_the_driver_then_rerun_into_the_bucket(raw_many, reference_dir, reference, any_bucket):
    """s3://, gs:// and az://: a second live job is refused by the lock; kill -9 mid-run, rerun: the same
    tar members and parquet rows as the uninterrupted single-process run."""
    out_url = f"{any_bucket.url}/l2i"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    cmd = _cli("--input", str(raw_many), "--output", out_url, "--num-cpus", "2", *any_bucket.argv)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    out = any_bucket.store("l2i")
    deadline = time.time() + 300
    while time.time() < deadline and not out.exists("_lock.json"):
        time.sleep(0.2)
    second = subprocess.run([*cmd, "--runner", "local"], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and "another `l2i synthesize` is writing to" in second.stderr, second.stderr
    while time.time() < deadline and not complete_shards(out):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
    proc.wait()
    assert 0 < len(complete_shards(out)) < 6, "kill did not land mid-run"
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _result(out) == reference
    clean, resumed = output_members(reference_dir), output_members(out)
    assert sorted(clean) == sorted(resumed) and [k for k in clean if clean[k] != resumed[k]] == []


@pytest.mark.slow
def test_a_worker_node_lost_mid_run_changes_nothing(raw_many, reference, tmp_path):
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    assert not ray_constants.ENABLE_RAY_CLUSTER, "tests/conftest.py keeps Ray on 127.0.0.1"
    _shutdown_ray()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
    # after the loss 3 CPUs remain: the two model actors (1 CPU each here) and the tasks that feed them
    victim = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    out = tmp_path / "l2i"
    removed = threading.Event()

    def remove_when_started():
        deadline = time.time() + 300
        while time.time() < deadline and not (out.exists() and complete_shards(out)):
            time.sleep(0.2)
        cluster.remove_node(victim, allow_graceful=False)
        removed.set()

    killer = threading.Thread(target=remove_when_started, daemon=True)
    killer.start()
    try:
        summary = synthesize(raw_many, out, load_config(None, CFG), runner="ray", ray_address=cluster.address)
    finally:
        killer.join(timeout=60)
        _shutdown_ray()
        cluster.shutdown()
    assert removed.is_set()
    assert not summary["failed"]
    assert _result(out) == reference
