"""One typed config for the whole pipeline: defaults here, a YAML file over them, `--set a.b=v` last.

Every key is a dataclass field, so a typo or a wrong type is a clear error before any work starts.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.core.typedconfig import apply_dict, load_typed

__all__ = ["Config", "ConfigError", "load_config", "config_from_dict"]


@dataclass
class DecodeConfig:
    min_size: int = 64  # reject images whose short side is below this (pixels)
    max_aspect_ratio: float = 3.0  # reject long/short side ratios above this
    max_pixels: int = 89_478_485  # refuse larger images before full decode (Pillow's bomb limit)


@dataclass
class SaliencyConfig:
    backend: str = "classical"  # classical | icon
    variant: str = "ICON-R"  # icon: ICON-R | ICON-S | ICON-P
    weights: str | None = None  # icon: path to the official .weight file
    batch_size: int = 16
    num_actors: int | None = None  # actor pool size; None: one per GPU in the cluster (1 without GPUs)
    num_gpus: float | None = None  # per actor, only when the cluster has GPUs; None: GPUs shared by the model stages
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class LayersConfig:
    threshold: float = 0.1  # F = I where m > threshold (paper: 0.1)
    dilate_kernel: int = 15  # elliptical kernel size (pixels at the working resolution)
    dilate_iterations: int = 2
    min_area: float = 0.01  # reject masks covering less than this fraction of the image
    max_area: float = 0.95  # ... or more than this fraction


@dataclass
class InpaintConfig:
    backend: str = "telea"  # telea | sd2
    radius: int = 5  # telea: inpainting radius
    model: str = "stabilityai/stable-diffusion-2-inpainting"  # sd2: diffusers dir or HF id (local cache)
    allow_download: bool = False  # sd2: let diffusers fetch the model when not cached
    steps: int = 50
    scheduler: str | None = None  # sd2: diffusers scheduler class name; None keeps the model's own
    guidance_scale: float = 7.5  # sd2: irrelevant with the empty prompt (see stages/inpaint_sd2.py)
    dtype: str = "auto"  # auto (fp16 on CUDA, fp32 on CPU) | fp16 | bf16 | fp32
    compile: bool = False
    feather: int = 0  # pixels of feathered seam when pasting the original back
    batch_size: int = 8
    num_actors: int | None = None  # as for saliency
    num_gpus: float | None = None
    device: str = "auto"


@dataclass
class ScoreConfig:
    mask_classifier: str | None = None  # checkpoint of `l2i classifiers train --task mask`
    inpaint_classifier: str | None = None
    batch_size: int = 64
    num_actors: int = 1
    num_gpus: float = 0.25
    device: str = "auto"


@dataclass
class Config:
    resolution: int = 512
    output_shard_size: int = 1000  # chunk of an input shard = one output shard = unit of restart
    seed: int = 0  # run seed; per-sample seeds derive from it and the sample key
    jpeg_quality: int = 95
    read_tasks: int = 4  # input shards read at once; bounds the partly written shards the driver buffers
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    saliency: SaliencyConfig = field(default_factory=SaliencyConfig)
    layers: LayersConfig = field(default_factory=LayersConfig)
    inpaint: InpaintConfig = field(default_factory=InpaintConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def validate(self) -> Config:
        checks = [
            (self.resolution >= 64, "resolution must be >= 64"),
            (self.output_shard_size >= 1, "output_shard_size must be >= 1"),
            (0.0 <= self.layers.threshold < 1.0, "layers.threshold must be in [0, 1)"),
            (0.0 <= self.layers.min_area < self.layers.max_area <= 1.0,
             "need 0 <= layers.min_area < layers.max_area <= 1"),
            (self.layers.dilate_kernel >= 1, "layers.dilate_kernel must be >= 1"),
            (self.decode.max_aspect_ratio >= 1.0, "decode.max_aspect_ratio must be >= 1"),
            (self.saliency.batch_size >= 1 and self.inpaint.batch_size >= 1, "batch sizes must be >= 1"),
            (all(n is None or n >= 1 for n in (self.saliency.num_actors, self.inpaint.num_actors)),
             "num_actors must be >= 1"),
            (all(g is None or g > 0 for g in (self.saliency.num_gpus, self.inpaint.num_gpus)), "num_gpus must be > 0"),
            (self.inpaint.feather >= 0, "inpaint.feather must be >= 0"),
            (self.read_tasks >= 1, "read_tasks must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file, then `--set` overrides; validated."""
    return load_typed(Config(), path, overrides).validate()


def config_from_dict(data: dict[str, Any]) -> Config:
    cfg = Config()
    apply_dict(cfg, data)
    return cfg.validate()
