"""The LDM as a task of the shared loop: loss falls, exact resume, caption dropout, baselines' codecs."""
import json

import pytest
import torch
from safetensors.torch import load_file

from training.base.config import load_train_config
from training.base.loop import Context, train
from training.ldm.task import LDMTask, drop_captions


@pytest.fixture(scope="module")
def latent_dir(l2i_dir, ae_dir, tmp_path_factory):
    from l2i_pipeline.core.storage import open_store
    from training.latents.encode import EncodeJob, encode

    out = tmp_path_factory.mktemp("latents")
    encode(EncodeJob(open_store(str(l2i_dir), {}), open_store(str(out), {}), str(ae_dir), resolution=64,
                     test_fraction=0.2, batch_size=6))
    return out


def _cfg(ae_dir, text_encoder_dir, *extra):
    sets = [f"ldm.ae={ae_dir}", f"ldm.text_encoder={text_encoder_dir}", "data.test_fraction=0.2", "log.every=1",
            "log.progress=false", "val.every=1000", "train.batch_size=4", *extra]
    return load_train_config("tiny", None, sets, cfg=LDMTask.base_config())


def _run(cfg, data_url, run_dir):
    from training.base.rundir import prepare_run_dir

    data = LDMTask.make_data(cfg, str(data_url))
    prepare_run_dir(run_dir, cfg, LDMTask.name, str(data_url))
    return train(LDMTask(cfg), data, cfg, run_dir, Context(torch.device("cpu")))


def test_ldm_loss_falls(latent_dir, ae_dir, text_encoder_dir, tmp_path):
    from training.base.rundir import read_metrics

    cfg = _cfg(ae_dir, text_encoder_dir, "train.steps=30", "train.lr=2e-3", "ckpt.every=30")
    assert cfg.train.adam_beta1 == 0.9 and cfg.ldm.unet == "tiny"
    _run(cfg, latent_dir, tmp_path / "run")
    assert cfg.ldm.latent_scale == pytest.approx(json.loads((latent_dir / "latents.json").read_text())["latent_scale"])
    mse = [r["mse"] for r in read_metrics(tmp_path / "run")]
    assert len(mse) == 30
    assert sum(mse[-8:]) / 8 < 0.8 * sum(mse[:8]) / 8, mse
    pipe = tmp_path / "run" / "pipeline"
    assert json.loads((pipe / "model_index.json").read_text())["latent_scale"] == pytest.approx(cfg.ldm.latent_scale)
    assert (tmp_path / "run" / "val" / "step_0000030.png").is_file()


def test_exact_resume_bitwise(latent_dir, ae_dir, text_encoder_dir, tmp_path):
    sets = ["ckpt.every=1", "ckpt.keep=2", "train.lr=1e-3"]
    _run(_cfg(ae_dir, text_encoder_dir, "train.steps=6", *sets), latent_dir, tmp_path / "once")
    _run(_cfg(ae_dir, text_encoder_dir, "train.steps=3", *sets), latent_dir, tmp_path / "twice")
    _run(_cfg(ae_dir, text_encoder_dir, "train.steps=6", *sets), latent_dir, tmp_path / "twice")  # fresh objects
    for name in ("unet", "ema", "optim_unet"):
        a = load_file(tmp_path / "once" / "checkpoints" / "step_0000006" / f"{name}.safetensors")
        b = load_file(tmp_path / "twice" / "checkpoints" / "step_0000006" / f"{name}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    state = json.loads((tmp_path / "twice" / "checkpoints" / "step_0000006" / "state.json").read_text())
    assert state["task"]["ema_steps"] == 6


def test_caption_dropout_rate():
    torch.manual_seed(0)
    dropped = sum(c == "" for c in drop_captions(["a dog"] * 20000, 0.1))
    assert 0.09 < dropped / 20000 < 0.11
    assert drop_captions(["a", "b"], 0.0) == ["a", "b"] and drop_captions(["a", "b"], 1.0) == ["", ""]


def test_train_from_shards_measures_the_scale(l2i_dir, ae_dir, text_encoder_dir, tmp_path):
    cfg = _cfg(ae_dir, text_encoder_dir, "train.steps=2", "data.num_workers=0", "train.grad_checkpointing=true")
    _run(cfg, l2i_dir, tmp_path / "run")
    assert cfg.ldm.latent_scale > 0
    assert (tmp_path / "run" / "pipeline" / "unet" / "config.json").is_file()


def test_bad_inputs(latent_dir, ae_dir, text_encoder_dir, tmp_path):
    from l2i_pipeline.core.errors import ConfigError, NotFound

    with pytest.raises(NotFound, match="autoencoder dir not found"):
        LDMTask.preflight(_cfg(tmp_path / "nope", text_encoder_dir))
    with pytest.raises(NotFound, match="tokenizer"):
        LDMTask.preflight(_cfg(ae_dir, ae_dir))
    with pytest.raises(ConfigError, match="ae.kind=sd_stack needs an SD autoencoder"):
        LDMTask.preflight(_cfg(ae_dir, text_encoder_dir, "ae.kind=sd_stack"))
    from training.models.ae import CaT2IAE

    other = tmp_path / "ae8"
    CaT2IAE(block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=8, head_width=8,
            latent_channels=8, mid_block_attention=False).save_pretrained(other)
    with pytest.raises(ConfigError, match="another autoencoder"):
        LDMTask.make_data(_cfg(other, text_encoder_dir), str(latent_dir))
    # an --init UNet whose channels do not fit the autoencoder's latents
    from training.ldm.unet import build_unet

    build_unet("tiny", 3, 32, 8).save_pretrained(tmp_path / "unet3")
    cfg = _cfg(ae_dir, text_encoder_dir, f"ldm.init={tmp_path / 'unet3'}", "train.steps=1")
    with pytest.raises(ConfigError, match="--init UNet takes 3 channels"):
        _run(cfg, latent_dir, tmp_path / "r")


def test_the_latents_path_and_the_shards_path_agree_on_flipping(latent_dir, l2i_dir, ae_dir, text_encoder_dir):
    """`l2i encode` stores unflipped latents, so the LDM does not flip on either path unless asked on shards."""
    from l2i_pipeline.core.errors import ConfigError

    cfg = _cfg(ae_dir, text_encoder_dir, "data.num_workers=0", "ldm.latent_scale=1")
    assert cfg.data.flip is False
    shards = LDMTask.make_data(cfg, str(l2i_dir))
    assert shards.cfg.flip is False
    with pytest.raises(ConfigError, match="data.flip=true cannot apply to the latents"):
        LDMTask.make_data(_cfg(ae_dir, text_encoder_dir, "data.flip=true"), str(latent_dir))
    flipped = LDMTask.make_data(_cfg(ae_dir, text_encoder_dir, "data.flip=true", "data.num_workers=0",
                                     "ldm.latent_scale=1"), str(l2i_dir))
    assert flipped.cfg.flip is True
