"""`l2i train ae` end to end on synthesized shards: learning, run dir, resume (exact after kill -9), refusals."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trainshards import tiny_config

from l2i_pipeline.cli import main
from training.ae.task import AETask
from training.base import rundir
from training.base.checkpoint import latest_checkpoint, list_checkpoints
from training.base.loop import Context, TrainingDiverged, train
from training.jobs.runner import _data

REPO = Path(__file__).resolve().parents[2]


def _train(cfg, l2i_dir, run_dir, task=None):
    return train(task or AETask(cfg), _data(cfg, str(l2i_dir)), cfg, run_dir, Context(torch.device("cpu")))


def test_loss_falls_and_the_run_dir_is_complete(l2i_dir, tmp_path):
    cfg = tiny_config("train.steps=30", "log.every=1", "loss.disc_start=1000", "ckpt.every=15", "val.every=15")
    run = tmp_path / "run"
    rundir.prepare_run_dir(run, cfg, "ae", str(l2i_dir))
    summary = _train(cfg, l2i_dir, run)
    assert summary == {"start_step": 0, "step": 30, "bad_samples": 0}
    rows = rundir.read_metrics(run)
    assert [r["step"] for r in rows] == list(range(1, 31))
    first, last = [sum(r["loss_ae"] for r in rows[i:i + 5]) / 5 for i in (0, 25)]
    assert last < 0.7 * first, (first, last)
    assert {"mask_l1", "mask_comp", "mask_lap", "nll_fg", "nll_bg", "nll_image", "kl", "samples_per_s",
            "grad_norm/ae", "lr/ae"} <= set(rows[-1])
    assert sorted(p.name for p in (run / "val").iterdir()) == ["step_0000015.png", "step_0000030.png"]
    assert [s for s, _ in list_checkpoints(run)] == [15, 30]  # tiny keeps 2
    ckpt = latest_checkpoint(run)
    names = {p.name for p in ckpt.iterdir()}
    assert {"model.safetensors", "disc.safetensors", "ema.safetensors", "optim_ae.safetensors",
            "optim_disc.safetensors", "state.json"} <= names
    assert not any(n.endswith((".pt", ".pth", ".pkl", ".bin")) for n in names)  # no pickle
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 30 and state["task"]["ema_steps"] == 30 and state["positions"]
    assert json.loads((run / "run.json").read_text())["config"]["data"]["resolution"] == 64
    assert (run / "ae" / "diffusion_pytorch_model.safetensors").is_file()


def test_raising_steps_continues_and_a_changed_resolution_is_refused(l2i_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "ae", "--runner", "local", "--preset", "tiny", "--data", str(l2i_dir), "--out", str(run),
            "--set", "log.progress=false", "--set", "data.num_workers=0"]
    assert main(args + ["--set", "train.steps=2"]) == 0
    assert main(args + ["--set", "train.steps=3"]) == 0
    assert "trained steps 2 -> 3" in capsys.readouterr().out
    assert main(args + ["--set", "train.steps=4", "--set", "data.resolution=32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.resolution" in err[0] and "differing keys" in err[0]


def test_nan_stops_with_step_and_term_and_keeps_the_last_checkpoint(l2i_dir, tmp_path):
    cfg = tiny_config("train.steps=5", "ckpt.every=1")
    task = AETask(cfg)
    step = task.step

    def poisoned(batch, i):
        out = step(batch, i)
        if i == 2:
            out.logs["mask_comp"] = out.logs["mask_comp"] * float("nan")
        return out

    task.step = poisoned
    with pytest.raises(TrainingDiverged, match=r"mask_comp.*step 2.*step_0000002"):
        _train(cfg, l2i_dir, tmp_path / "run", task)
    last = latest_checkpoint(tmp_path / "run")
    assert last.name == "step_0000002"
    assert all(torch.isfinite(t).all() for t in load_file(str(last / "model.safetensors")).values())


def test_unwritable_run_dir_and_missing_data_are_one_line_errors(l2i_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    base = ["train", "ae", "--runner", "local", "--preset", "tiny"]
    assert main(base + ["--data", str(l2i_dir), "--out", str(blocker / "run")]) == 2
    assert main(base + ["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")]) == 2
    assert main(base + ["--data", str(l2i_dir), "--out", str(tmp_path / "r"), "--set", "loss.lpips_weight=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("l2i train: error:") for line in err)
    assert "cannot write" in err[0] and "not found" in err[1] and "vgg16-397923af.pth" in err[2]


def _cli(l2i_dir: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "l2i_pipeline.cli", "train", "ae", "--runner", "local", "--preset", "tiny",
            "--data", str(l2i_dir), "--out", str(out), "--set", "train.steps=6", "--set", "ckpt.every=1",
            "--set", "ckpt.keep=10", "--set", "data.num_workers=2", "--set", "log.progress=false",
            "--set", "loss.disc_start=2", "--set", "log.every=1", *extra]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.mark.slow
def test_exact_resume_after_kill_9(l2i_dir, tmp_path):
    """6 steps in one go == 3 steps, kill -9, rerun to 6: the exported tensors agree bit for bit."""
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    subprocess.run(_cli(l2i_dir, whole), check=True, env=_env(), capture_output=True, timeout=600)
    proc = subprocess.Popen(_cli(l2i_dir, broken), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not (broken / "checkpoints" / "step_0000003").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before step 3"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the trainer and its loader workers, mid-run
    proc.wait()
    killed_at = latest_checkpoint(broken).name
    assert killed_at < "step_0000006", "kill came too late to test a resume"
    out = subprocess.run(_cli(l2i_dir, broken), check=True, env=_env(), capture_output=True, text=True, timeout=600)
    assert f"trained steps {int(killed_at[5:])} -> 6" in out.stdout
    for rel in ("ae/diffusion_pytorch_model.safetensors", "checkpoints/step_0000006/model.safetensors",
                "checkpoints/step_0000006/disc.safetensors", "checkpoints/step_0000006/optim_ae.safetensors",
                "checkpoints/step_0000006/optim_disc.safetensors"):
        a, b = load_file(str(whole / rel)), load_file(str(broken / rel))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), rel
    state = json.loads((broken / "checkpoints/step_0000006/state.json").read_text())
    assert state["positions"] == json.loads((whole / "checkpoints/step_0000006/state.json").read_text())["positions"]
    assert len(state["positions"]) == 2  # one stream per loader worker
    assert [r["step"] for r in rundir.read_metrics(broken)] == list(range(1, 7))  # redone steps logged once


def test_bf16_accumulation_checkpointing_clipping_and_no_sup_run(l2i_dir, tmp_path):
    cfg = tiny_config("train.steps=2", "train.precision=bf16", "train.grad_accum=2", "train.grad_checkpointing=true",
                      "train.max_grad_norm=1.0", "ae.aux_image_head=false", "loss.disc_start=1", "log.every=1")
    assert _train(cfg, l2i_dir, tmp_path / "run")["step"] == 2
    rows = rundir.read_metrics(tmp_path / "run")
    assert "nll_image" not in rows[-1] and "g_fg" in rows[-1]  # no-sup: no I term; GAN on at step 1
    assert all(torch.isfinite(torch.tensor(r["loss_ae"])) for r in rows)
