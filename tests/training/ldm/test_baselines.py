"""Table I/II baselines as config: SD-AE-UNet(ft) (ae.kind=sd_stack, widened --init), SD-LAION-L2I
(ldm.target=image); --init to continue a model at another resolution; `l2i train ldm` through the CLI."""
import json

import pyarrow.parquet as pq
import pytest
import torch

from l2i_pipeline.cli import main


@pytest.fixture(scope="module")
def sd_vae_dir(tmp_path_factory):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, norm_num_groups=8,
                        latent_channels=4, sample_size=64)
    out = tmp_path_factory.mktemp("sd") / "vae"
    vae.save_pretrained(out)
    return out


def _encode(l2i_dir, ae, out, *sets):
    args = ["encode", "--data", l2i_dir, "--ae", ae, "--out", out, "--preset", "tiny", "--runner", "local"]
    for s in sets:
        args += ["--set", s]
    assert main([str(a) for a in args]) == 0
    return json.loads((out / "latents.json").read_text())


def _train(data, ae, te, out, *sets, init=None):
    args = ["train", "ldm", "--data", data, "--ae", ae, "--text-encoder", te, "--out", out, "--preset", "tiny",
            "--runner", "local", "--set", "log.progress=false", "--set", "train.steps=2", "--set", "data.num_workers=0"]
    for s in sets:
        args += ["--set", s]
    if init:
        args += ["--init", init]
    return main([str(a) for a in args])


def _sample(model, out):
    assert main(["sample", "--runner", "local", "--model", str(model), "--prompt", "a dog", "--out", str(out),
                 "--n", "1", "--steps", "2"]) == 0
    return pq.read_table(out / "samples.parquet").to_pylist()[0]


def test_sd_ae_unet_ft(l2i_dir, sd_vae_dir, text_encoder_dir, tmp_path):
    from training.ldm.unet import build_unet

    info = _encode(l2i_dir, sd_vae_dir, tmp_path / "lat", "ae.kind=sd_stack")
    assert info["latent_shape"] == [12, 8, 8]
    build_unet("tiny", 4, 32, 8).save_pretrained(tmp_path / "sd_unet")  # stands in for SD v1-4's unet/
    assert _train(tmp_path / "lat", sd_vae_dir, text_encoder_dir, tmp_path / "run", "ae.kind=sd_stack",
                  init=tmp_path / "sd_unet") == 0
    unet_cfg = json.loads((tmp_path / "run" / "pipeline" / "unet" / "config.json").read_text())
    assert unet_cfg["in_channels"] == unet_cfg["out_channels"] == 12
    row = _sample(tmp_path / "run" / "pipeline", tmp_path / "s")
    assert any(p.endswith("layers.ora") for p in row["paths"])


def test_sd_laion_l2i_plain_text_to_image(l2i_dir, sd_vae_dir, text_encoder_dir, tmp_path):
    _encode(l2i_dir, sd_vae_dir, tmp_path / "lat", "ldm.target=image")
    assert _train(tmp_path / "lat", sd_vae_dir, text_encoder_dir, tmp_path / "run", "ldm.target=image") == 0
    row = _sample(tmp_path / "run" / "pipeline", tmp_path / "s")
    assert sorted(p.rsplit("/", 1)[-1] for p in row["paths"]) == ["composite.png", "image.png"]


def test_init_continues_at_another_resolution_and_rerun_checks(l2i_dir, ae_dir, text_encoder_dir, tmp_path, capsys):
    from training.base.config import load_train_config
    from training.base.loop import Context
    from training.ldm.pipeline import LayeredDiffusionPipeline
    from training.ldm.task import LDMTask

    _encode(l2i_dir, ae_dir, tmp_path / "lat64")
    assert _train(tmp_path / "lat64", ae_dir, text_encoder_dir, tmp_path / "run64") == 0
    capsys.readouterr()
    assert _train(tmp_path / "lat64", ae_dir, text_encoder_dir, tmp_path / "run64", "ldm.caption_dropout=0.5") == 2
    assert "ldm.caption_dropout" in capsys.readouterr().err
    cfg = load_train_config("tiny", None, [f"ldm.ae={ae_dir}", f"ldm.text_encoder={text_encoder_dir}",
                                           f"ldm.init={tmp_path / 'run64'}", "data.resolution=128",
                                           "ldm.latent_scale=1.0"], cfg=LDMTask.base_config())
    task = LDMTask(cfg)
    task.setup(Context(torch.device("cpu")))
    assert task.unet.config.sample_size == 16
    old = LayeredDiffusionPipeline.from_pretrained(tmp_path / "run64" / "pipeline").unet.state_dict()
    assert all(torch.equal(v, old[k]) for k, v in task.unet.state_dict().items())


def test_latents_of_another_resolution_refused(l2i_dir, ae_dir, text_encoder_dir, tmp_path, capsys):
    _encode(l2i_dir, ae_dir, tmp_path / "lat64")
    assert _train(tmp_path / "lat64", ae_dir, text_encoder_dir, tmp_path / "run", "data.resolution=128") == 2
    assert "data.resolution=128" in capsys.readouterr().err


@pytest.mark.slow
def test_train_ldm_on_ray_two_workers(l2i_dir, ae_dir, text_encoder_dir, tmp_path):
    import ray

    _encode(l2i_dir, ae_dir, tmp_path / "lat")
    args = ["train", "ldm", "--data", tmp_path / "lat", "--ae", ae_dir, "--text-encoder", text_encoder_dir,
            "--out", tmp_path / "run", "--preset", "tiny", "--workers", 2, "--set", "train.steps=4",
            "--set", "train.batch_size=2", "--set", "log.progress=false", "--set", "ckpt.every=2"]
    try:
        assert main([str(a) for a in args]) == 0
    finally:
        ray.shutdown()
    state = json.loads((tmp_path / "run" / "checkpoints" / "step_0000004" / "state.json").read_text())
    assert state["world_size"] == 2 and set(state["positions"]) == {"latents0", "latents1"}
    assert (tmp_path / "run" / "pipeline" / "model_index.json").is_file()


@pytest.mark.slow
def test_kill_9_and_rerun_is_bitwise(l2i_dir, ae_dir, text_encoder_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from safetensors.torch import load_file

    _encode(l2i_dir, ae_dir, tmp_path / "lat")

    def cmd(out):
        return [sys.executable, "-m", "l2i_pipeline.cli", "train", "ldm", "--data", str(tmp_path / "lat"), "--ae",
                str(ae_dir), "--text-encoder", str(text_encoder_dir), "--out", str(out), "--preset", "tiny",
                "--runner", "local", "--set", "train.steps=6", "--set", "ckpt.every=1", "--set", "ckpt.keep=10",
                "--set", "log.progress=false"]

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(cmd(tmp_path / "once"), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(cmd(tmp_path / "killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (tmp_path / "killed" / "checkpoints" / "step_0000003" / "state.json").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(cmd(tmp_path / "killed"), check=True, env=env, capture_output=True)
    for name in ("unet", "ema", "optim_unet"):
        a = load_file(tmp_path / "once" / "checkpoints" / "step_0000006" / f"{name}.safetensors")
        b = load_file(tmp_path / "killed" / "checkpoints" / "step_0000006" / f"{name}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), name
    a = load_file(tmp_path / "once" / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "killed" / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
