"""CaT2I-AE shapes, the no-sup ablation, save/load, and the config it is built from."""
from __future__ import annotations

import pytest
import torch
from trainshards import tiny_config

from l2i_pipeline.core.errors import ConfigError
from training.ae.task import build_ae
from training.base.config import load_train_config
from training.models.ae import CaT2IAE, stack_layers


def test_shapes_7_to_4_at_h_over_8_and_four_heads():
    ae = build_ae(tiny_config())
    x = stack_layers(torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 1, 64, 64))
    assert x.shape[1] == 7
    posterior = ae.encode(x).latent_dist
    assert posterior.sample().shape == (2, 4, 8, 8) and ae.downsample_factor == 8
    out = ae.decode(posterior.mode())
    assert out.fg.shape == out.bg.shape == out.image.shape == (2, 3, 64, 64)
    assert out.mask.shape == (2, 1, 64, 64) and 0 <= out.mask.min() and out.mask.max() <= 1
    assert isinstance(ae.decoder.conv_out, torch.nn.Identity)  # the SD decoder's last layer is gone
    with pytest.raises(ValueError, match="7 channels"):
        ae.encode(torch.rand(1, 3, 64, 64))


def test_no_sup_drops_the_image_head():
    ae = build_ae(tiny_config("ae.aux_image_head=false"))
    out = ae.decode(torch.randn(1, 4, 8, 8))
    assert out.image is None and ae.head_image is None and "image" not in ae.heads()


def test_save_pretrained_round_trip_is_equal(tmp_path):
    torch.manual_seed(0)
    ae = build_ae(tiny_config()).eval()
    ae.save_pretrained(str(tmp_path / "ae"), safe_serialization=True)
    assert (tmp_path / "ae" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = CaT2IAE.from_pretrained(str(tmp_path / "ae")).eval()
    a, b = ae.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    z = torch.randn(1, 4, 8, 8)
    assert torch.equal(ae.decode(z).fg, loaded.decode(z).fg)


def test_config_refuses_unknown_keys_bad_types_and_presets():
    with pytest.raises(ConfigError, match="unknown config key 'train.stepz'"):
        load_train_config(None, None, ["train.stepz=3"])
    with pytest.raises(ConfigError, match="train.steps"):
        load_train_config(None, None, ["train.steps=many"])
    with pytest.raises(ConfigError, match="unknown preset"):
        load_train_config("huge")
    with pytest.raises(ConfigError, match="multiple of ae.norm_num_groups"):
        load_train_config("tiny", None, ["ae.block_out_channels=[8,12]"])
    cfg = load_train_config("tiny", None, ["train.steps=7"])
    assert cfg.train.steps == 7 and cfg.data.resolution == 64
