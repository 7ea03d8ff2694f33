"""`l2i train ae` on Ray Train: a TorchTrainer with 2 CPU workers (DDP over gloo), killed mid-run and rerun."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.base import rundir
from training.base.checkpoint import latest_checkpoint

REPO = Path(__file__).resolve().parents[2]


def _session_pids(sid: int) -> list[int]:
    """Processes of the session the test started (the driver, its local Ray and Ray's workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[3]) == sid:  # state ppid pgrp session
                pids.append(int(entry))
    return pids


@pytest.mark.slow
def test_ray_two_workers_killed_and_rerun_finish_from_the_checkpoint(l2i_dir, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "l2i_pipeline.cli", "train", "ae", "--runner", "ray", "--workers", "2",
           "--preset", "tiny", "--data", str(l2i_dir), "--out", str(run), "--set", "train.steps=6",
           "--set", "ckpt.every=1", "--set", "log.every=1", "--set", "data.num_workers=1",
           "--set", "log.progress=false"]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "RAY_ADDRESS": "", "RAY_DEDUP_LOGS": "0"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 600
        while not (run / "checkpoints" / "step_0000002").exists():
            assert proc.poll() is None and time.time() < deadline, "the Ray run ended before step 2"
            time.sleep(0.1)
    finally:
        for pid in _session_pids(proc.pid):  # kill -9 the driver and the local Ray it started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
    killed_at = int(latest_checkpoint(run).name[5:])
    assert killed_at < 6
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, start_new_session=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"trained steps {killed_at} -> 6" in out.stdout
    assert latest_checkpoint(run).name == "step_0000006"
    assert (run / "ae" / "diffusion_pytorch_model.safetensors").is_file()
    rows = rundir.read_metrics(run)
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert rows[-1]["samples_per_s"] > 0
