"""The pipeline config composed above core (stages/config.py): the stages' and backends' sections are
declared beside their code, and the composed dict is the one run.json has always recorded."""
from __future__ import annotations

import dataclasses
import inspect

import pytest

from l2i_pipeline.core import config as core
from stages.config import Config, ConfigError, InpaintConfig, load_config

INPAINT_KEYS = ["backend", "radius", "model", "allow_download", "steps", "scheduler", "guidance_scale", "dtype",
                "compile", "compile_mode", "vae_batch_size", "feather", "batch_size", "num_actors", "num_gpus",
                "device"]  # the order of run.json's config.inpaint before the split


def test_the_composed_config_keeps_every_key_in_its_order():
    d = Config().to_dict()
    assert list(d) == ["resolution", "output_shard_size", "seed", "jpeg_quality", "read_tasks", "decode",
                       "saliency", "layers", "inpaint", "score"]
    assert list(d["inpaint"]) == INPAINT_KEYS
    assert list(d["score"]) == ["mask_classifier", "inpaint_classifier", "batch_size", "num_actors", "num_gpus",
                                "device"]
    assert d["inpaint"]["steps"] == 50 and d["inpaint"]["radius"] == 5 and d["inpaint"]["backend"] == "telea"


def test_core_knows_no_inpaint_or_classifier_keys():
    assert {f.name for f in dataclasses.fields(core.Config)} == {
        "resolution", "output_shard_size", "seed", "jpeg_quality", "read_tasks", "decode", "saliency", "layers"}
    text = inspect.getsource(core)
    for word in ("sd2", "classifier", "telea", "guidance", "InpaintConfig", "ScoreConfig", "inpaint."):
        assert word not in text, word


def test_the_owners_checks_still_run_at_load():
    assert load_config(None, ["inpaint.steps=20", "inpaint.backend=sd2"]).inpaint.steps == 20
    with pytest.raises(ConfigError, match="'inpaint.dtype' = 'fp8': allowed auto, fp16"):
        load_config(None, ["inpaint.dtype=fp8"])
    with pytest.raises(ConfigError, match="'inpaint.radius' = 0: allowed 1..64"):
        load_config(None, ["inpaint.radius=0"])
    with pytest.raises(ConfigError, match="'score.device' = 'gpu'"):
        load_config(None, ["score.device=gpu"])
    with pytest.raises(ConfigError, match="unknown config key 'inpaint.nope'"):
        load_config(None, ["inpaint.nope=1"])
    assert isinstance(Config().inpaint, InpaintConfig)
