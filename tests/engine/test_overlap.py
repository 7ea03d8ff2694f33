"""Overlap of CPU and (simulated) GPU stages: the local runner's threads, GPU shares from the cluster, and
a loose floor on the simulated GPU's busy fraction (bench/bench_pipeline_sim.py measures the real figure)."""
import json
import sys
import threading
import time
from pathlib import Path

import pytest

from l2i_pipeline.engine.threaded import run_threaded
from stages.config import load_config

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import sim_backends  # noqa: E402


def test_threaded_steps_keep_order_and_rebatch():
    seen = []

    def step(batch):
        seen.append(len(batch))
        return [x * 2 for x in batch]

    out = list(run_threaded(iter(range(23)), [(5, step), (7, lambda b: [x + 1 for x in b])]))
    assert out == [2 * x + 1 for x in range(23)]
    assert seen == [5, 5, 5, 5, 3]


def test_threaded_steps_overlap():
    def slow(batch):
        time.sleep(0.05)
        return batch

    t = time.perf_counter()
    assert len(list(run_threaded(iter(range(40)), [(4, slow), (4, slow), (4, slow)]))) == 40
    assert time.perf_counter() - t < 3 * 10 * 0.05 * 0.7  # sequential would take 1.5 s


def test_a_step_with_two_threads_passes_everything_once_and_overlaps():
    active, peak = [0], [0]
    lock = threading.Lock()

    def slow(batch):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return batch

    out = list(run_threaded(iter(range(101)), [(4, lambda b: b), (4, slow, 2), (3, lambda b: b)]))
    assert sorted(out) == list(range(101))
    assert peak[0] == 2


def test_a_failing_step_stops_every_thread_and_raises():
    def boom(batch):
        if batch[0] >= 8:
            raise ValueError("bad batch")
        return batch

    with pytest.raises(ValueError, match="bad batch"):
        list(run_threaded(iter(range(1000)), [(4, boom), (4, lambda b: b)]))
    with pytest.raises(ValueError, match="bad batch"):
        list(run_threaded(iter(range(1000)), [(4, lambda b: b), (4, boom, 2), (4, lambda b: b)]))


def _sim_env(tmp_path, monkeypatch):
    """Before Ray starts: its workers read the settings from the environment they inherit."""
    sim = {"saliency_s": 0.01, "inpaint_s": 0.08, "dir": str(tmp_path / "gpu")}
    monkeypatch.setenv(sim_backends.ENV, json.dumps(sim))


def _sim_run(tmp_path, raw_dir, runner):
    from l2i_pipeline.engine.synthesize import synthesize

    cfg = load_config(None, ["resolution=96", "output_shard_size=4", "saliency.batch_size=4", "inpaint.batch_size=4",
                             "saliency.backend=sim_backends:SimSaliency", "inpaint.backend=sim_backends:SimInpainter"])
    summary = synthesize(raw_dir, tmp_path / f"out_{runner}", cfg, runner=runner)
    spans = sim_backends.busy_intervals(tmp_path / "gpu")
    first, last = min(a for _, a, _, _ in spans), max(b for _, _, b, _ in spans)
    return summary, sim_backends.busy_fraction(spans, first, last)


def test_local_runner_keeps_the_simulated_gpu_busy(tmp_path, raw_dir, monkeypatch):
    _sim_env(tmp_path, monkeypatch)
    summary, busy = _sim_run(tmp_path, raw_dir, "local")
    assert summary["samples"] == 12 and summary["status"]["ok"] == 11
    assert busy > 0.5  # loose: the GPU time dominates, and the CPU stages run beside it


@pytest.mark.slow
def test_ray_runner_with_defaults_shares_one_gpu(tmp_path, raw_dir, monkeypatch):
    import os

    import ray

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")]))  # for workers
    _sim_env(tmp_path, monkeypatch)
    from l2i_pipeline.core.shards import read_output_index
    from l2i_pipeline.engine.synthesize import synthesize

    # a CPU model before the GPU one: classical saliency runs as tasks, the rest in the device actor
    mixed = load_config(None, ["resolution=96", "output_shard_size=4", "inpaint.backend=sim_backends:SimInpainter"])
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="WARNING")
    try:
        summary, busy = _sim_run(tmp_path, raw_dir, "ray")
        synthesize(raw_dir, tmp_path / "mixed_ray", mixed, runner="ray")
    finally:
        ray.shutdown()
    assert summary["samples"] == 12 and summary["status"]["ok"] == 11
    assert busy > 0.3
    synthesize(raw_dir, tmp_path / "mixed_local", mixed, runner="local")
    ray_rows, local_rows = (sorted(map(str, read_output_index(tmp_path / d).to_pylist()))
                            for d in ("mixed_ray", "mixed_local"))
    assert ray_rows == local_rows and len(ray_rows) == 12
