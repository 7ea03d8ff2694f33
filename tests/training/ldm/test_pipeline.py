"""The exported pipeline: one from_pretrained call, layered output, clear errors."""
import json
import shutil

import numpy as np
import pytest

from l2i_pipeline.core.errors import ConfigError, NotFound
from training.ldm.pipeline import LayeredDiffusionPipeline


def test_round_trip_and_layered_output(tiny_pipeline_dir):
    index = json.loads((tiny_pipeline_dir / "model_index.json").read_text())
    assert index["latent_scale"] == 0.5 and index["ae"] == ["training.latents.codec", "SDStackAE"]
    pipe = LayeredDiffusionPipeline.from_pretrained(tiny_pipeline_dir)
    assert pipe.config.latent_scale == 0.5
    out = pipe(["a dog", "a cat"], [0, 1], steps=2, guidance=2.0)
    assert len(out) == 2 and out[0].fg.shape == (16, 16, 3) and out[0].mask.shape == (16, 16)
    assert 0 <= out[0].mask.min() and out[0].mask.max() <= 1
    again = pipe(["a cat"], [1], steps=2, guidance=2.0)[0]
    assert np.abs(again.bg.astype(int) - out[1].bg.astype(int)).max() <= 1  # batch == one by one


def test_missing_component_and_channel_mismatch(tiny_pipeline_dir, tmp_path):
    with pytest.raises(NotFound, match="model_index.json"):
        LayeredDiffusionPipeline.load(tmp_path / "nothing")
    broken = tmp_path / "p"
    shutil.copytree(tiny_pipeline_dir, broken)
    shutil.rmtree(broken / "unet")
    with pytest.raises(NotFound, match="unet/"):
        LayeredDiffusionPipeline.load(broken)
    shutil.rmtree(broken)
    shutil.copytree(tiny_pipeline_dir, broken)
    cfg = json.loads((broken / "unet" / "config.json").read_text())
    from training.ldm.unet import build_unet

    build_unet("tiny", 4, 32, 8).save_pretrained(broken / "unet")
    with pytest.raises(ConfigError, match="12 latent channels but the UNet takes 4"):
        LayeredDiffusionPipeline.load(broken)
    assert cfg["in_channels"] == 12


def test_documented_import_path_is_the_same_class():
    import training.pipeline

    assert training.pipeline.LayeredDiffusionPipeline is LayeredDiffusionPipeline
