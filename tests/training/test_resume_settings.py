"""NaN recovery: optimiser settings may change on resume (recorded in run.json), `train ae --init CKPT`
starts a new run from a checkpoint's weights, and the NaN message says what to do."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from trainshards import tiny_config

from l2i_pipeline.cli import main
from training.ae.task import AETask
from training.base import rundir
from training.base.loop import Context, TrainingDiverged, train
from training.jobs.runner import _data


def _args(l2i_dir, run, *sets):
    out = ["train", "ae", "--runner", "local", "--preset", "tiny", "--data", str(l2i_dir), "--out", str(run),
           "--set", "log.progress=false", "--set", "data.num_workers=0", "--set", "log.every=1"]
    for s in sets:
        out += ["--set", s]
    return out


def test_a_lower_lr_on_resume_is_accepted_used_and_recorded(l2i_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_args(l2i_dir, run, "train.steps=2", "ckpt.every=2")) == 0
    assert "learning rate 0.001 = base 0.00025 x batch 4 x 1 worker(s) x accumulation 1" in capsys.readouterr().out
    assert main(_args(l2i_dir, run, "train.steps=4", "train.lr=1e-4")) == 0
    assert "trained steps 2 -> 4" in capsys.readouterr().out
    rows = rundir.read_metrics(run)
    assert rows[1]["lr/ae"] == pytest.approx(1e-3) and rows[-1]["lr/ae"] == pytest.approx(4e-4)  # 1e-4 x batch 4
    info = json.loads((run / "run.json").read_text())
    assert info["lr"]["effective"] == pytest.approx(4e-4) and info["config"]["train"]["lr"] == 1e-4
    first, change = info["optimiser_history"]
    assert first["from_step"] == 0 and first["lr"]["effective"] == pytest.approx(1e-3)
    assert change["from_step"] == 2 and change["changed"] == {"train.lr": [2.5e-4, 1e-4]}
    # an output-affecting key is still refused, and the message says optimiser settings may change
    assert main(_args(l2i_dir, run, "train.steps=5", "loss.mask_weight=2")) == 2
    err = capsys.readouterr().err
    assert "differing keys: loss.mask_weight" in err and "optimiser settings" in err


def test_init_starts_a_new_run_from_a_checkpoints_weights(l2i_dir, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(_args(l2i_dir, first, "train.steps=2", "ckpt.every=1")) == 0
    ckpt = first / "checkpoints" / "step_0000001"
    cfg = tiny_config(f"ae.init={ckpt}")
    AETask.preflight(cfg)
    task = AETask(cfg)
    task.setup(Context(torch.device("cpu")))
    saved = load_file(str(ckpt / "model.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in task.model.state_dict().items())
    ema = load_file(str(ckpt / "ema.safetensors"))
    assert all(torch.equal(ema[k], v) for k, v in task.ema.state_dict().items())
    capsys.readouterr()
    assert main(["train", "ae", "--init", str(ckpt), *_args(l2i_dir, tmp_path / "second", "train.steps=2")[2:]]) == 0
    assert "trained steps 0 -> 2" in capsys.readouterr().out  # fresh step and optimiser
    info = json.loads((tmp_path / "second" / "run.json").read_text())
    assert info["config"]["ae"]["init"] == str(ckpt.resolve())
    assert main(["train", "ae", "--init", str(tmp_path / "nope"), *_args(l2i_dir, tmp_path / "third")[2:]]) == 2
    assert "neither a checkpoint" in capsys.readouterr().err
    assert main(["train", "ae", "--init", str(ckpt), *_args(l2i_dir, tmp_path / "fourth", "ae.head_width=16")[2:]]) == 2
    assert "differing keys: ae.head_width" in capsys.readouterr().err


def test_the_nan_message_says_what_to_do(l2i_dir, tmp_path):
    cfg = tiny_config("train.steps=5", "ckpt.every=1")
    task = AETask(cfg)
    step = task.step

    def poisoned(batch, i):
        out = step(batch, i)
        if i == 3:
            out.logs["mask_comp"] = out.logs["mask_comp"] * float("nan")
        return out

    task.step = poisoned
    with pytest.raises(TrainingDiverged) as e:
        train(task, _data(cfg, str(l2i_dir)), cfg, tmp_path / "run", Context(torch.device("cpu")))
    msg = str(e.value)
    assert "last good checkpoint" in msg and "step_0000003" in msg and "an earlier one" in msg
    assert "lower train.lr" in msg and "--set train.lr=0.000125" in msg and "--init" in msg
