"""The ground floor's part of the pipeline config: the run keys and the decode, saliency and layers
sections. The sections the stages and backends above declare (`inpaint`, `score`) are composed onto it by
stages/config.py, where `load_config` lives; core knows none of their keys.

Every key is a dataclass field, so a typo or a wrong type is a clear error before any work starts.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.formats import mask8

__all__ = ["Config", "ConfigError", "RANGES", "check_ranges", "check_device", "span"]


@dataclass
class DecodeConfig:
    min_size: int = 64  # reject images whose short side is below this (pixels)
    max_aspect_ratio: float = 3.0  # reject long/short side ratios above this
    max_pixels: int = 89_478_485  # refuse larger images before full decode (Pillow's bomb limit)


@dataclass
class SaliencyConfig:
    backend: str = "u2netp"  # u2netp (offline default) | classical | icon (the paper's)
    variant: str = "ICON-R"  # icon: ICON-R | ICON-S | ICON-P
    weights: str | None = None  # icon: the official .weight file; u2netp: an .onnx file (None: the packaged one)
    batch_size: int = 16
    # Ray: every model stage lives in the same device actors (engine/runner.py), so these size that pool:
    num_actors: int | None = None  # device actors; the largest set wins; None: one per GPU (1 without GPUs)
    num_gpus: float | None = None  # this model's GPU share per actor (summed); None: what is left of one GPU
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class LayersConfig:
    threshold: float = mask8.CUT  # F = I where m > threshold (paper: 0.1)
    dilate_kernel: int = 15  # elliptical kernel size (pixels at the working resolution)
    dilate_iterations: int = 2
    min_area: float = 0.01  # reject masks covering less than this fraction of the image
    max_area: float = 0.95  # ... or more than this fraction
    # soft alpha (issue 26; matting helper owns this block)
    alpha: str = "binary"  # binary (the paper: alpha = the 0/1 cut) | matting (trimap + pymatting)
    band: int = 12  # matting: half-width (pixels at the working resolution) of the band alpha may be soft in
    matting_scale: float = 0.5  # matting: solve alpha and F' at this fraction of the resolution (cost ~ scale^2)
    # peeling (issue 26; peeling helper owns this block)
    count: int = 1  # layers per photo: 1 = the paper; up to 4 (saliency runs again on each background B_k)
    min_component_area: float = 0.01  # count > 1: a separate part of the mask covering at least this share
    # of the image (and at least min_area) becomes a layer of its own; smaller parts go with the nearest one
    max_inpainted_share: float = 0.5  # count > 1: stop when more of a new pass's mask than this lies in pixels
    # an earlier layer's inpainting made (the inpainting's ghost of that layer, not an object of the photo)
    split: str = "components"  # count > 1: components (separate parts only) | occlusion (also cut one region
    # into overlapping objects by colour, front first by occlusion: stages/overlap.py)


@dataclass
class Config:
    resolution: int = 512
    output_shard_size: int = 1000  # chunk of an input shard = one output shard = unit of restart
    seed: int = 0  # run seed; per-sample seeds derive from it and the sample key
    jpeg_quality: int = 95
    read_tasks: int | None = None  # input shards read at once (bounds the shards in flight); None: 2 per
    # device actor (one read + decode task outpaces one GPU's inpainting), at least 4
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    saliency: SaliencyConfig = field(default_factory=SaliencyConfig)
    layers: LayersConfig = field(default_factory=LayersConfig)

    def validate(self) -> Config:
        """Every numeric key within RANGES, every device a known name; else ConfigError naming the key."""
        check_ranges(self, RANGES)
        if self.layers.min_area >= self.layers.max_area:
            raise ConfigError("need layers.min_area < layers.max_area")
        check_device(self, "saliency.device")
        if self.layers.alpha not in ALPHAS:
            raise ConfigError(f"config key 'layers.alpha' = {self.layers.alpha!r}: allowed {', '.join(ALPHAS)}")
        if self.layers.split not in SPLITS:
            raise ConfigError(f"config key 'layers.split' = {self.layers.split!r}: allowed {', '.join(SPLITS)}")
        return self

    def get(self, dotted: str) -> Any:
        obj: Any = self
        for part in dotted.split("."):
            obj = getattr(obj, part)
        return obj

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def span(lo: float, hi: float) -> str:
    return f">= {lo}" if hi == math.inf else f"{lo}..{hi}"


OPTIONAL = ("num_actors", "num_gpus", "vae_batch_size", "read_tasks")  # None: derived at run time


def check_ranges(cfg: Any, ranges: dict[str, tuple[float, float]]) -> None:
    """Each dotted key of `cfg` within its (lo, hi); the keys ending in OPTIONAL may also be None."""
    for key, (lo, hi) in ranges.items():
        v = cfg.get(key)
        if v is None and key.endswith(OPTIONAL):
            continue  # unset: derived from the cluster's resources (the batch, for the VAE)
        if not (lo <= v <= hi):  # false for nan too
            raise ConfigError(f"config key {key!r} = {v!r}: allowed {span(lo, hi)}")


def check_device(cfg: Any, key: str) -> None:
    if not DEVICE.fullmatch(cfg.get(key)):
        raise ConfigError(f"config key {key!r} = {cfg.get(key)!r}: allowed auto, cpu, cuda or cuda:N")


# Allowed values, checked before any work and listed by `l2i synthesize --help` (config_help()).
RANGES: dict[str, tuple[float, float]] = {
    "resolution": (64, 4096),
    "output_shard_size": (1, 1_000_000),
    "seed": (0, 2**63 - 1),
    "jpeg_quality": (1, 100),
    "read_tasks": (1, 1024),
    "decode.min_size": (1, 4096),
    "decode.max_aspect_ratio": (1.0, 1000.0),
    "decode.max_pixels": (1, 2**40),
    "saliency.batch_size": (1, 4096),
    "saliency.num_actors": (1, 4096),
    "saliency.num_gpus": (0.0, 8.0),
    "layers.threshold": (0.0, 0.999),
    "layers.dilate_kernel": (1, 101),
    "layers.dilate_iterations": (0, 10),
    "layers.min_area": (0.0, 1.0),
    "layers.max_area": (0.0, 1.0),
    "layers.band": (1, 64),
    "layers.matting_scale": (0.125, 1.0),
    "layers.count": (1, 4),
    "layers.min_component_area": (0.0, 1.0),
    "layers.max_inpainted_share": (0.0, 1.0),
}
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
ALPHAS = ("binary", "matting")  # layers.alpha
SPLITS = ("components", "occlusion")  # layers.split
