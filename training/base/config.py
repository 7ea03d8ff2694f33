"""The typed training config: defaults here, a preset, a YAML file, then `--set a.b=v` (docs/TRAINING.md).

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
    view: str = "paper"  # paper: layer 1 (I, F, m, B) | peel: every layer k of shards made with layers.count > 1,
    # as a sample (B_{k-1} as the image, F_k, m_k, B_k; issue 26, training/data/index.py)
    fg: str = "rgb"  # rgb: F = fg.png, m = mask.png (the paper) | rgba: F = fg_rgba.png's F', m = alpha.png
    # (shards made with layers.alpha=matting; issue 26)


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
    kind: str = "cat2i"  # cat2i | sd_stack (LDM baseline SD-AE-UNet: a frozen SD autoencoder per layer, 12 ch)
    init: str = ""  # `train ae --init`: a checkpoint (or run dir: its latest) whose weights start this run


@dataclass
class LDMConfig:
    """The latent diffusion model on AE latents (paper eq. 5, docs/TRAINING.md; `l2i train ldm`)."""

    target: str = "layers"  # layers | image (SD-LAION-L2I: plain text-to-image on I, --ae an SD autoencoder)
    data: str = "auto"  # auto (latents when --data holds `l2i encode` output) | latents | shards
    unet: str = "sd_v1"  # UNet2DConditionModel preset (training/ldm/unet.py): sd_v1 | small | tiny
    caption_dropout: float = 0.1  # captions replaced by "" (the CFG unconditional branch)
    latent_scale: float = 0.0  # 0 = 1/std of the training latents (from `l2i encode`, or measured)
    scale_samples: int = 256  # with ldm.data=shards: training samples the std is measured on
    sample_posterior: bool = True  # z ~ q(z|x) (as SD); false = the posterior mean
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    warmup_steps: int = 10_000  # linear lr warm-up
    val_steps: int = 25  # DDIM steps of the validation images
    val_guidance: float = 7.5
    init: str = ""  # --init: UNet weights to start from (RUN/pipeline, a pipeline dir or a unet dir)
    ae: str = ""  # --ae, recorded in run.json
    text_encoder: str = ""  # --text-encoder, recorded in run.json


@dataclass
class LossConfig:
    """L = L_img(F, B, I) + mask_weight * L_mask (eq. 3, 4, Appendix III; LDM's LPIPSWithDiscriminator)."""

    l1_weight: float = 1.0
    lpips_weight: float = 1.0
    kl_weight: float = 1e-6
    logvar_init: float = 0.0
    learn_logvar: bool = False  # LDM's reference code steps no optimiser on logvar, so it stays at logvar_init
    disc_weight: float = 0.5  # LDM: the adaptive weight is multiplied by this
    disc_factor: float = 1.0
    disc_start: int = 50001  # steps before the GAN term (and the discriminator's training) switch on
    disc_layers: int = 3  # PatchGAN (NLayerDiscriminator) depth
    disc_channels: int = 64
    disc_lr: float | None = None  # None = train.lr (a base rate, scaled like train.lr)
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
    lr: float = 4.5e-6  # LDM's base lr for its KL autoencoders; see scale_lr
    scale_lr: bool = True  # effective lr = lr x batch_size x world size (GPUs) x grad_accum (LDM main.py)
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
    ldm: LDMConfig = field(default_factory=LDMConfig)
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
            (self.data.view in ("paper", "peel"), "data.view must be paper or peel"),
            (self.data.fg in ("rgb", "rgba"), "data.fg must be rgb or rgba"),
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
            (self.ae.kind in ("cat2i", "sd_stack"), "ae.kind must be cat2i or sd_stack"),
            (self.ldm.target in ("layers", "image"), "ldm.target must be layers or image"),
            (self.ldm.data in ("auto", "latents", "shards"), "ldm.data must be auto, latents or shards"),
            (0.0 <= self.ldm.caption_dropout <= 1.0, "ldm.caption_dropout must be in [0, 1]"),
            (self.ldm.latent_scale >= 0.0, "ldm.latent_scale must be >= 0 (0 = measured)"),
            (0.0 < self.ldm.beta_start < self.ldm.beta_end < 1.0, "need 0 < ldm.beta_start < ldm.beta_end < 1"),
            (self.ldm.num_train_timesteps >= 2 and self.ldm.warmup_steps >= 0 and self.ldm.val_steps >= 1,
             "ldm.num_train_timesteps >= 2, ldm.warmup_steps >= 0, ldm.val_steps >= 1"),
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
        "train": {"steps": 20, "batch_size": 4, "lr": 2.5e-4, "cpu_threads": 1},  # x batch 4 = 1e-3
        "ema": {"decay": 0.9},
        "ckpt": {"every": 10, "keep": 2},
        "log": {"every": 5},
        "val": {"every": 10, "num_images": 2},
        "ldm": {"unet": "tiny", "warmup_steps": 0, "val_steps": 4, "scale_samples": 16},
    },
}

# `l2i train ldm` starts from these instead of the AE's optimiser defaults (docs/TRAINING.md: AdamW lr 1e-4,
# EMA 0.9999; paper: 75k UNet steps); a preset, the YAML file and --set apply over them.
# The LDM's lr is SD's absolute 1e-4 (not scaled), and it does not flip: `l2i encode` stores the latents
# of unflipped samples, so ldm.data=latents (the default path) and ldm.data=shards see the same images.
LDM_DEFAULTS: dict[str, Any] = {
    "train": {"steps": 75_000, "lr": 1e-4, "scale_lr": False, "adam_beta1": 0.9, "adam_beta2": 0.999,
              "weight_decay": 1e-2},
    "data": {"flip": False},
    "ema": {"decay": 0.9999},
}

# keys a resumed run may change: how long, how often, how verbosely. data.num_workers is not one: the
# number of loader workers fixes how samples are split into streams, so it changes the order of batches
RUNTIME_KEYS = {"steps", "every", "keep", "backend", "progress", "device", "cpu_threads", "storage_options",
                "num_images", "val_steps", "val_guidance"}
# optimiser settings: a resumed run may change them too (lower train.lr after a NaN); the optimiser's state
# (moments, step counts) is kept, and run.json records each change in its `optimiser_history`
OPTIMISER_KEYS = {"lr", "scale_lr", "disc_lr", "adam_beta1", "adam_beta2", "weight_decay", "max_grad_norm"}


def effective_lr(t: TrainOptConfig, world_size: int, base: float | None = None) -> float:
    """The rate the optimiser uses: `base` (train.lr) x batch_size x world_size x grad_accum with scale_lr."""
    base = t.lr if base is None else base
    return base * t.batch_size * world_size * t.grad_accum if t.scale_lr else base


def lr_summary(cfg: TrainConfig, world_size: int) -> dict[str, Any]:
    """What run.json records and the CLI prints about the learning rate."""
    t = cfg.train
    out = {"base": t.lr, "scale_lr": t.scale_lr, "batch_size": t.batch_size, "world_size": world_size,
           "grad_accum": t.grad_accum, "effective": effective_lr(t, world_size)}
    if cfg.loss.disc_lr is not None:
        out["disc_effective"] = effective_lr(t, world_size, cfg.loss.disc_lr)
    return out


def describe_lr(s: dict[str, Any]) -> str:
    if not s["scale_lr"]:
        return f"learning rate {s['effective']:.3g} (train.scale_lr=false)"
    return (f"learning rate {s['effective']:.3g} = base {s['base']:.3g} x batch {s['batch_size']} x "
            f"{s['world_size']} worker(s) x accumulation {s['grad_accum']} (train.scale_lr)")


def load_train_config(preset: str | None = None, path: str | Path | None = None,
                      overrides: list[str] | None = None, cfg: TrainConfig | None = None) -> TrainConfig:
    """Defaults (or `cfg`), then the preset, then the YAML file, then `--set` overrides; validated."""
    cfg = cfg if cfg is not None else TrainConfig()
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        apply_dict(cfg, PRESETS[preset])
    return load_typed(cfg, path, overrides).validate()


def with_storage_options(cfg: TrainConfig, given: str | None) -> TrainConfig:
    """`--storage-options JSON` into data.storage_options (the --data/--out URLs' fsspec options); giving
    both it and `--set data.storage_options` is refused, as a repeated key is."""
    if given:
        if cfg.data.storage_options:
            raise ConfigError("--storage-options and data.storage_options both given; give one")
        cfg.data.storage_options = given
    return cfg


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    cfg = TrainConfig()
    apply_dict(cfg, data)
    return cfg.validate()
