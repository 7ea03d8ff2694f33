"""On Ray Train: a user error in a worker ends the run at once (no restarts that would fail the same way),
other failures are restarted up to --max-failures, and a run does not flood the log with Ray Train's
"Failed to query Ray Train Controller actor state" warning."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from trainshards import tiny_config

from l2i_pipeline.core.errors import InputError

REPO = Path(__file__).resolve().parents[2]


class _FakeTrainer:
    """Stands in for TorchTrainer: each fit() raises the next planned error (wrapped, as Ray does)."""

    plan: list = []
    fits = 0

    def __init__(self, *a, **kw):
        assert kw["run_config"].failure_config.max_failures == 0  # the restarts are ours

    def fit(self):
        _FakeTrainer.fits += 1
        error = _FakeTrainer.plan.pop(0)
        if error is not None:
            raise RuntimeError("Training failed") from error


def _run_ray(monkeypatch, tmp_path, plan, max_failures=3):
    import ray
    import ray.train.torch

    from training.jobs import runner
    from training.jobs.runner import TrainJob

    monkeypatch.setattr(ray.train.torch, "TorchTrainer", _FakeTrainer)
    monkeypatch.setattr("l2i_pipeline.core.rayutil.init_ray", lambda *a, **kw: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2})
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    _FakeTrainer.plan, _FakeTrainer.fits = list(plan), 0
    job = TrainJob(data="unused", out=str(tmp_path), runner="ray", max_failures=max_failures)
    runner.run_ray(type("Task", (), {"name": "ae"}), tiny_config(), None, tmp_path, job)


def test_a_user_error_is_not_restarted(monkeypatch, tmp_path):
    with pytest.raises(InputError, match="bad shard"):
        _run_ray(monkeypatch, tmp_path, [InputError("bad shard"), None])
    assert _FakeTrainer.fits == 1


def test_a_user_error_inside_ray_train_v2s_worker_failures_is_found(monkeypatch, tmp_path):
    from ray.train.v2.api.exceptions import WorkerGroupError

    with pytest.raises(InputError, match="bad shard"):
        _run_ray(monkeypatch, tmp_path, [WorkerGroupError("rank 0 failed", {0: InputError("bad shard")}), None])
    assert _FakeTrainer.fits == 1


def test_other_failures_are_restarted_up_to_max_failures(monkeypatch, tmp_path):
    _run_ray(monkeypatch, tmp_path, [OSError("node lost"), OSError("node lost"), None])
    assert _FakeTrainer.fits == 3
    with pytest.raises(RuntimeError):
        _run_ray(monkeypatch, tmp_path, [OSError("x")] * 3, max_failures=1)
    assert _FakeTrainer.fits == 2


def test_the_quiet_hook_silences_the_cleaner_warning():
    import logging

    from training.jobs.runner import quiet_ray_train

    name = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
    before = logging.getLogger(name).level
    try:
        quiet_ray_train()
        assert not logging.getLogger(name).isEnabledFor(logging.WARNING)
    finally:
        logging.getLogger(name).setLevel(before)


@pytest.mark.slow
def test_ray_run_is_quiet_and_a_worker_side_user_error_is_one_line_without_restarts(l2i_copy, tmp_path):
    cmd = [sys.executable, "-m", "l2i_pipeline.cli", "train", "ae", "--runner", "ray", "--workers", "1",
           "--preset", "tiny", "--data", str(l2i_copy), "--set", "train.steps=3", "--set", "data.num_workers=0",
           "--set", "log.progress=false"]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "RAY_ADDRESS": ""}
    ok = subprocess.run(cmd + ["--out", str(tmp_path / "ok")], env=env, capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "Failed to query Ray Train Controller" not in ok.stdout + ok.stderr
    tar = l2i_copy / "00000_0000.tar"  # same size, other bytes: only the worker's sha256 check can tell
    tar.write_bytes(np.random.default_rng(0).bytes(tar.stat().st_size))
    bad = subprocess.run(cmd + ["--out", str(tmp_path / "bad")], env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2, bad.stderr[-3000:]
    assert bad.stderr.strip().splitlines()[-1].startswith("l2i train: error:")
    assert "does not match its marker" in bad.stderr.strip().splitlines()[-1]
    assert "restart 1/" not in bad.stderr
