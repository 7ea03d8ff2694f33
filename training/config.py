"""The typed training config: defaults here, a preset, a YAML file, then `--set a.b=v` (TRAINING.md).

Loaded with the project's one typed-config loader (`l2i_pipeline.core.typedconfig.load_typed`), so an
unknown key or a wrong type is refused before any work. Every choice the paper leaves open is a key here
and lands in the run's `run.json`, so an ablation is a `--set`. Further sections (e.g. `ldm`) are added
as fields of `TrainConfig`; `RUNTIME_KEYS` lists the keys a resumed run may change.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.core.typedconfig import apply_dict, load_typed


@dataclass
class DataConfig:
    resolution: int = 256  # F, B, m, I are resized to this square size (paper: 256, then 512)
    flip: bool = True  # one random horizontal flip shared by all layers of a sample
    test_fraction: float = 0.01  # held-out share of keys (by hash; evaluation reuses the split)
    split_seed: int = 0
    num_workers: int = 2  # loader processes per rank; 0 reads in the training process
    storage_options: str = ""  # JSON object for fsspec (credentials, endpoint) of the --data URL


@dataclass
class AEConfig:
    """CaT2I-AE: the SD KL-f8 encoder/decoder blocks (diffusers) with four heads (paper IV-B)."""

    block_out_channels: list = field(default_factory=lambda: [128, 256, 512, 512])  # SD: 3 downsamples = f8
    layers_per_block: int = 2
    norm_num_groups: int = 32
    latent_channels: int = 4  # (ours) as SD's KL-f8: 32x32x4 at 256^2
    head_width: int = 64  # (ours) hidden width of each conv-bn-relu-conv head
    aux_image_head: bool = True  # false = the paper's "no-sup" ablation (no I head, no I loss)
    mid_block_attention: bool = True


@dataclass
class LossConfig:
    """L = L_img(F, B, I) + mask_weight * L_mask (eq. 3, 4, Appendix III; LDM's LPIPSWithDiscriminator)."""

    l1_weight: float = 1.0
    lpips_weight: float = 1.0
    kl_weight: float = 1e-6
    logvar_init: float = 0.0
    disc_weight: float = 0.5  # LDM: the adaptive weight is multiplied by this
    disc_factor: float = 1.0
    disc_start: int = 50001  # steps before the GAN term (and the discriminator's training) switch on
    disc_layers: int = 3  # PatchGAN (NLayerDiscriminator) depth
    disc_channels: int = 64
    disc_lr: float | None = None  # None = train.lr
    mask_weight: float = 1.0  # lambda of eq. 3
    mask_l1: float = 1.0
    mask_comp: float = 2.0
    mask_lap: float = 3.0
    comp_eps: float = 1e-6
    lap_levels: int = 3


@dataclass
class LPIPSConfig:
    vgg_weights: str | None = None  # torchvision's ImageNet VGG16 file, vgg16-397923af.pth
    pnet_rand: bool = False  # random trunk, no file: tests only


@dataclass
class TrainOptConfig:
    steps: int = 250_000  # optimiser steps (paper: 250k for the AE)
    batch_size: int = 8  # per rank and micro-batch
    grad_accum: int = 1
    lr: float = 4.5e-6  # (ours) LDM's base lr for its KL autoencoders
    adam_beta1: float = 0.5
    adam_beta2: float = 0.9
    weight_decay: float = 0.0
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast)
    grad_checkpointing: bool = False
    max_grad_norm: float = 0.0  # 0 = no clipping
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    cpu_threads: int = 0  # torch intra-op threads per rank; 0 = torch's default (1 is fastest on a busy CPU)


@dataclass
class EMAConfig:
    decay: float = 0.999
    enabled: bool = True


@dataclass
class CkptConfig:
    every: int = 1000
    keep: int = 3


@dataclass
class LogConfig:
    every: int = 50
    backend: str = "jsonl"  # jsonl | tensorboard (jsonl is always written)
    progress: bool = True


@dataclass
class ValConfig:
    every: int = 1000
    num_images: int = 4  # held-out samples in the fixed grid


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    ae: AEConfig = field(default_factory=AEConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    lpips: LPIPSConfig = field(default_factory=LPIPSConfig)
    train: TrainOptConfig = field(default_factory=TrainOptConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    ckpt: CkptConfig = field(default_factory=CkptConfig)
    log: LogConfig = field(default_factory=LogConfig)
    val: ValConfig = field(default_factory=ValConfig)

    def validate(self) -> TrainConfig:
        ch = self.ae.block_out_channels
        checks = [
            (self.data.resolution >= 16 and self.data.resolution % 8 == 0, "data.resolution must be a multiple of 8"),
            (0.0 <= self.data.test_fraction < 1.0, "data.test_fraction must be in [0, 1)"),
            (self.data.num_workers >= 0, "data.num_workers must be >= 0"),
            (self.train.cpu_threads >= 0, "train.cpu_threads must be >= 0"),
            (isinstance(ch, list) and len(ch) >= 1 and all(isinstance(c, int) and c > 0 for c in ch),
             "ae.block_out_channels must be a list of positive ints, e.g. [128,256,512,512]"),
            (isinstance(ch, list) and all(isinstance(c, int) and c % self.ae.norm_num_groups == 0 for c in ch),
             "each ae.block_out_channels entry must be a multiple of ae.norm_num_groups"),
            (self.train.steps >= 1 and self.train.batch_size >= 1 and self.train.grad_accum >= 1,
             "train.steps, train.batch_size and train.grad_accum must be >= 1"),
            (self.train.precision in ("fp32", "bf16", "fp16"), "train.precision must be fp32, bf16 or fp16"),
            (self.train.device in ("auto", "cpu", "cuda"), "train.device must be auto, cpu or cuda"),
            (0.0 <= self.ema.decay < 1.0, "ema.decay must be in [0, 1)"),
            (self.ckpt.every >= 1 and self.ckpt.keep >= 1, "ckpt.every and ckpt.keep must be >= 1"),
            (self.log.every >= 1 and self.val.every >= 1, "log.every and val.every must be >= 1"),
            (self.log.backend in ("jsonl", "tensorboard"), "log.backend must be jsonl or tensorboard"),
            (1 <= self.loss.lap_levels <= 6, "loss.lap_levels must be in [1, 6]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Presets are plain override dicts applied over the defaults, before the YAML file and --set.
PRESETS: dict[str, dict[str, Any]] = {
    # a few-channel model at 64^2 that trains in seconds on a CPU: tests and the demo
    "tiny": {
        "data": {"resolution": 64, "test_fraction": 0.1, "num_workers": 2},
        "ae": {"block_out_channels": [8, 16, 16, 16], "layers_per_block": 1, "norm_num_groups": 8,
               "head_width": 8, "mid_block_attention": False},
        # LPIPS off: its VGG16 trunk dominates a tiny model's step and needs a weights file the demo lacks
        "loss": {"disc_start": 10, "disc_layers": 2, "disc_channels": 8, "lpips_weight": 0.0},
        "train": {"steps": 20, "batch_size": 4, "lr": 1e-3, "cpu_threads": 1},
        "ema": {"decay": 0.9},
        "ckpt": {"every": 10, "keep": 2},
        "log": {"every": 5},
        "val": {"every": 10, "num_images": 2},
    },
}

# keys a resumed run may change: how long, how often, how verbosely. data.num_workers is not one: the
# number of loader workers fixes how samples are split into streams, so it changes the order of batches
RUNTIME_KEYS = {"steps", "every", "keep", "backend", "progress", "device", "cpu_threads", "storage_options",
                "num_images"}


def load_train_config(preset: str | None = None, path: str | Path | None = None,
                      overrides: list[str] | None = None, cfg: TrainConfig | None = None) -> TrainConfig:
    """Defaults (or `cfg`), then the preset, then the YAML file, then `--set` overrides; validated."""
    cfg = cfg if cfg is not None else TrainConfig()
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        apply_dict(cfg, PRESETS[preset])
    return load_typed(cfg, path, overrides).validate()


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    cfg = TrainConfig()
    apply_dict(cfg, data)
    return cfg.validate()
