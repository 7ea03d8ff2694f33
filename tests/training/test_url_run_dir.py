"""`l2i train ae --out s3://...` (moto's S3 server on 127.0.0.1): the run dir lives in the bucket. Each
checkpoint and the export are committed there by a marker written last; a driver killed with -9 mid-run and
rerun resumes from the bucket's last committed checkpoint, and its exported weights equal an uninterrupted
run's, byte for byte. Before, a URL --out was refused (and earlier still became a local directory `s3:`)."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l2i_pipeline.cli import main
from l2i_pipeline.core.storage import open_store

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = "ae/diffusion_pytorch_model.safetensors"
ARGS = ["train", "ae", "--runner", "local", "--preset", "tiny", "--set", "ckpt.every=2",
        "--set", "ckpt.keep=2", "--set", "log.progress=false", "--set", "data.num_workers=0"]
SIX = ["--set", "train.steps=6"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_run_dir_in_a_bucket_commits_each_checkpoint_and_resumes_after_kill_9(l2i_dir, s3_bucket, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setenv("L2I_RUN_CACHE", str(tmp_path / "cache"))
    assert main([*ARGS, *SIX, "--data", str(l2i_dir), "--out", str(tmp_path / "local")]) == 0  # uninterrupted
    want = _sha((tmp_path / "local" / WEIGHTS).read_bytes())

    url = f"{s3_bucket}/runs/ae"
    bucket = open_store(url)
    env = {**os.environ, "L2I_RUN_CACHE": str(tmp_path / "cache-killed")}
    job = subprocess.Popen([sys.executable, "-m", "l2i_pipeline.cli", *ARGS, *SIX, "--data", str(l2i_dir),
                            "--out", url], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline and not bucket.child("checkpoints").list("step_0000002.done.json"):
        assert job.poll() is None, job.stdout.read().decode()[-3000:]
        time.sleep(0.2)
    job.send_signal(signal.SIGKILL)  # after the first committed checkpoint, before the end
    job.wait(60)
    done = sorted(bucket.child("checkpoints").list(".done.json"))
    assert done and "step_0000006.done.json" not in done, done

    # the rerun, from a fresh cache (another machine): resumes from the bucket, not from step 0
    monkeypatch.setenv("L2I_RUN_CACHE", str(tmp_path / "cache-rerun"))
    assert main([*ARGS, *SIX, "--data", str(l2i_dir), "--out", url]) == 0
    run = json.loads(bucket.get("run.json"))
    assert run["task"] == "ae" and run.get("resumed")
    assert sorted(bucket.child("checkpoints").list(".done.json")) == ["step_0000004.done.json",
                                                                      "step_0000006.done.json"]  # ckpt.keep=2
    assert _sha(bucket.get(WEIGHTS)) == want  # the export equals the uninterrupted run's
    marker = json.loads(bucket.get("ae.done.json"))
    assert marker["files"]["diffusion_pytorch_model.safetensors"]["sha256"] == want
    steps = [json.loads(line)["step"] for line in bucket.get("metrics.jsonl").decode().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 6  # the redone steps are logged once
    assert bucket.child("val").list(".png")
    assert not (Path.cwd() / "s3:").exists()
    from training.latents.codec import check_ae_dir  # `l2i train ldm --ae URL` / `l2i encode --ae URL` load it

    assert _sha((check_ae_dir(f"{url}/ae") / "diffusion_pytorch_model.safetensors").read_bytes()) == want


def test_a_torn_checkpoint_in_the_bucket_is_never_resumed_from(l2i_dir, s3_bucket, tmp_path, monkeypatch):
    from training.base.runstore import RunStore

    monkeypatch.setenv("L2I_RUN_CACHE", str(tmp_path / "cache"))
    url = f"{s3_bucket}/runs/torn"
    assert main([*ARGS, "--set", "train.steps=2", "--data", str(l2i_dir), "--out", url]) == 0
    bucket = open_store(url)
    bucket.put("checkpoints/step_0000004/model.safetensors", b"half an upload")  # no marker: not committed
    runs = RunStore(url)
    assert runs.committed_steps() == ["step_0000002"]
    local = runs.pull()
    assert sorted(p.name for p in (local / "checkpoints").iterdir()) == ["step_0000002"]
    bucket.put("checkpoints/step_0000002/state.json", b"{}")  # damaged after its commit
    try:
        runs.pull()
    except Exception as e:  # noqa: BLE001
        assert "does not match its marker" in str(e)
    else:
        raise AssertionError("a file that differs from its marker was accepted")


@pytest.mark.slow
def test_ray_train_two_ranks_each_with_its_own_copy_write_what_a_shared_run_dir_gets(l2i_dir, s3_bucket, tmp_path):
    """Two DDP ranks on Ray Train, --out in the bucket: each rank trains in its own local copy (nothing shared
    but the bucket), rank 0 commits; the export equals the same run's into a local run dir."""
    cmd = [sys.executable, "-m", "l2i_pipeline.cli", "train", "ae", "--runner", "ray", "--workers", "2",
           "--preset", "tiny", "--data", str(l2i_dir), "--set", "train.steps=4", "--set", "ckpt.every=2",
           "--set", "data.num_workers=0", "--set", "log.progress=false"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "RAY_ADDRESS": "",
           "L2I_RUN_CACHE": str(tmp_path / "cache")}
    for out in (str(tmp_path / "shared"), f"{s3_bucket}/runs/ray"):
        r = subprocess.run([*cmd, "--out", out], env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-3000:]
    bucket = open_store(f"{s3_bucket}/runs/ray")
    assert _sha(bucket.get(WEIGHTS)) == _sha((tmp_path / "shared" / WEIGHTS).read_bytes())
    assert sorted(bucket.child("checkpoints").list(".done.json")) == ["step_0000002.done.json",
                                                                      "step_0000004.done.json"]
    copies = sorted(p.name for p in (tmp_path / "cache").glob("*/*"))
    assert copies == ["driver", "rank0", "rank1"]  # one working copy per process, none shared


def test_a_second_training_run_into_the_same_run_dir_is_refused(l2i_dir, s3_bucket, tmp_path, monkeypatch, capsys):
    from l2i_pipeline.core.lock import LOCK, output_lock

    monkeypatch.setenv("L2I_RUN_CACHE", str(tmp_path / "cache"))
    for out in (f"{s3_bucket}/runs/locked", str(tmp_path / "local")):
        with output_lock(open_store(out), "train ae"):
            assert main([*ARGS, "--set", "train.steps=2", "--data", str(l2i_dir), "--out", out]) == 2
            assert "is writing to" in capsys.readouterr().err
        assert not open_store(out).exists("run.json"), "refused before any write"
        assert main([*ARGS, "--set", "train.steps=2", "--data", str(l2i_dir), "--out", out]) == 0
        assert not open_store(out).exists(LOCK)
