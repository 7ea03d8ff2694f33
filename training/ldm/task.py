"""The latent-diffusion task for the shared training loop (training/base/loop.py): paper eq. 5 on AE latents.

ε-prediction with an MSE loss on z_t = √ᾱ_t·z + √(1−ᾱ_t)·ε, SD's scaled-linear DDPM schedule, captions
dropped to "" at `ldm.caption_dropout` (the unconditional branch of classifier-free guidance), z = a draw
from the posterior times the latent scale (1/std of the training latents), AdamW with a linear warm-up,
an EMA of the UNet (its step count resumes). The frozen AE and text encoder are loaded from dirs; the
export is the whole `LayeredDiffusionPipeline` (RUN2/pipeline/) with the EMA UNet.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from l2i_pipeline.core.errors import ConfigError, NotFound
from training.base.config import TrainConfig, effective_lr
from training.base.loop import StepOutput
from training.latents import codec
from training.ldm.ddim import SD_SCHEDULE, ddim_sample
from training.ldm.text import encode_prompts, load_text_encoder
from training.ldm.unet import build_unet, load_unet, widen_io

log = logging.getLogger(__name__)


def ldm_sets(ae: str, text_encoder: str, init: str | None = None) -> list[str]:
    """`l2i train ldm`'s --ae, --text-encoder and --init as config keys, so run.json records them and a resume
    checks them (a local path made absolute; a URL, an export committed to a bucket, kept as given)."""
    from l2i_pipeline.core.storage import split_protocol

    def absolute(location: str) -> str:
        return str(Path(location).resolve()) if split_protocol(location)[0] == "file" else location

    sets = [f"ldm.ae={absolute(ae)}", f"ldm.text_encoder={Path(text_encoder).resolve()}"]
    return sets + ([f"ldm.init={Path(init).resolve()}"] if init else [])


def schedule_config(cfg: TrainConfig) -> dict:
    return dict(SD_SCHEDULE, num_train_timesteps=cfg.ldm.num_train_timesteps, beta_start=cfg.ldm.beta_start,
                beta_end=cfg.ldm.beta_end)


def drop_captions(captions: list[str], p: float) -> list[str]:
    """Each caption replaced by "" with probability p (draws from torch's RNG, which the loop seeds per step)."""
    keep = torch.rand(len(captions)) >= p
    return [c if k else "" for c, k in zip(captions, keep.tolist())]


def codec_kind(cfg: TrainConfig) -> tuple[str, str]:
    return ("cat2i", "image") if cfg.ldm.target == "image" else (cfg.ae.kind, "layers")


def init_unet_dir(path: str) -> Path:
    """--init accepts a run dir (RUN/pipeline/unet), a pipeline dir (PIPE/unet) or a UNet dir."""
    p = Path(path)
    for cand in (p / "pipeline" / "unet", p / "unet", p):
        if (cand / "config.json").is_file():
            return cand
    raise NotFound(f"--init {p}: no UNet there (expected RUN/pipeline/unet, PIPELINE/unet or a dir with config.json)")


class LDMTask:
    name = "pipeline"

    def __init__(self, cfg: TrainConfig):
        if cfg.ldm.latent_scale <= 0:
            raise ValueError("ldm.latent_scale must be resolved (LDMTask.make_data) before training")
        self.cfg, self.latent_scale = cfg, float(cfg.ldm.latent_scale)
        self.ema_steps = 0

    # ------------------------------------------------------------------ driver side, before any worker
    @staticmethod
    def base_config() -> TrainConfig:
        """The defaults `l2i train ldm` starts from (config.LDM_DEFAULTS over TrainConfig's)."""
        from l2i_pipeline.core.typedconfig import apply_dict
        from training.base.config import LDM_DEFAULTS

        cfg = TrainConfig()
        apply_dict(cfg, copy.deepcopy(LDM_DEFAULTS))
        return cfg

    @staticmethod
    def preflight(cfg: TrainConfig) -> None:
        """Clear errors before any work: the autoencoder, text encoder and --init dirs."""
        from training.ldm.text import check_text_encoder_dir

        if not cfg.ldm.ae:
            raise ConfigError("train ldm needs --ae (RUN/ae from `l2i train ae`, or an SD vae/ dir for the baselines)")
        if not cfg.ldm.text_encoder:
            raise ConfigError("train ldm needs --text-encoder (a dir with SD's text_encoder/ and tokenizer/)")
        kind, target = codec_kind(cfg)
        codec.check_ae_dir(cfg.ldm.ae, kind, target)
        check_text_encoder_dir(cfg.ldm.text_encoder)
        if cfg.ldm.init:
            init_unet_dir(cfg.ldm.init)

    @staticmethod
    def make_data(cfg: TrainConfig, url: str):
        """The batches: latents from `l2i encode` (ldm.data=latents, or auto on such a dir) or L2I shards.

        Resolves ldm.latent_scale (when 0) into `cfg`, so run.json records the scale actually used.
        """
        from l2i_pipeline.core.storage import open_store
        from training.base.fingerprint import dir_fingerprint
        from training.base.runstore import fetched
        from training.latents.shards import is_latent_dir
        from training.latents.stream import LatentData

        ldm = cfg.ldm
        store = open_store(url, json.loads(cfg.data.storage_options) if cfg.data.storage_options else None)
        use_latents = ldm.data == "latents" or (ldm.data == "auto" and is_latent_dir(store))
        if use_latents:
            if cfg.data.flip:
                raise ConfigError(f"data.flip=true cannot apply to the latents in {url}: `l2i encode` stores "
                                  f"the latents of unflipped samples; use ldm.data=shards to train on flips")
            data = LatentData(store, cfg.train.batch_size, cfg.train.seed)
            info = data.summary
            if info.get("ae_fingerprint") != dir_fingerprint(fetched(ldm.ae)):
                raise ConfigError(f"the latents in {url} were encoded with another autoencoder ({info.get('ae')}) "
                                  f"than --ae {ldm.ae}; encode with it (`l2i encode`) or pass that --ae")
            if info.get("resolution") != cfg.data.resolution:
                raise ConfigError(f"the latents in {url} are of {info.get('resolution')}^2 images but "
                                  f"data.resolution={cfg.data.resolution}")
            if ldm.latent_scale <= 0:
                ldm.latent_scale = float(info["latent_scale"])
            return data
        from training.data.index import build_index
        from training.data.stream import L2IData

        data = L2IData(store, build_index(url, store, cfg.data), cfg.data, cfg.train.batch_size, cfg.train.seed)
        if ldm.latent_scale <= 0:
            kind, target = codec_kind(cfg)
            ae = codec.load_ae(ldm.ae, kind=kind, target=target)
            batches = data.batches(0, 1, {})
            ldm.latent_scale = measure_latent_scale(ae, batches, ldm.scale_samples, "cpu")
            if hasattr(batches, "close"):
                batches.close()
        log.info("latent scale %.5f", ldm.latent_scale)
        return data

    # ------------------------------------------------------------------ setup
    def setup(self, ctx) -> None:
        cfg, ldm = self.cfg, self.cfg.ldm
        self.ctx, self.device = ctx, ctx.device
        kind, target = codec_kind(cfg)
        self.ae = codec.load_ae(ldm.ae, kind=kind, target=target).to(self.device)
        self.text_encoder, self.tokenizer = load_text_encoder(ldm.text_encoder, self.device)
        channels = codec.latent_channels(self.ae)
        side = cfg.data.resolution // codec.downsample_factor(self.ae)
        cross = self.text_encoder.config.hidden_size
        if ldm.init:
            unet = load_unet(init_unet_dir(ldm.init))
            if unet.config.in_channels != channels:
                if channels % unet.config.in_channels:
                    raise ConfigError(f"--init UNet takes {unet.config.in_channels} channels; the autoencoder's "
                                      f"latents have {channels}")
                unet = widen_io(unet, channels)  # SD-AE-UNet(ft): SD v1-4's 4 channels widened to 12
            if unet.config.cross_attention_dim != cross:
                raise ConfigError(f"--init UNet cross-attends to {unet.config.cross_attention_dim}-wide text "
                                  f"embeddings; the text encoder gives {cross}")
            unet.register_to_config(sample_size=side)
            log.info("UNet initialised from %s", ldm.init)
        else:
            torch.manual_seed(cfg.train.seed)
            unet = build_unet(ldm.unet, channels, cross, side)
        if cfg.train.grad_checkpointing:
            unet.enable_gradient_checkpointing()
        self.unet = unet.to(self.device).train()
        self.ema = copy.deepcopy(self.unet).requires_grad_(False).eval()
        self.model = ctx.prepare(self.unet)
        from diffusers import DDPMScheduler

        self.noise_scheduler = DDPMScheduler.from_config(schedule_config(cfg))
        t = cfg.train
        self.lr = effective_lr(t, ctx.world_size)  # LDM_DEFAULTS: train.scale_lr=false, so train.lr as given
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=self.lr, betas=(t.adam_beta1, t.adam_beta2),
                                     weight_decay=t.weight_decay)

    def optimizers(self) -> dict:
        return {"unet": self.opt}

    def modules(self) -> dict:
        return {"unet": self.unet, "ema": self.ema}

    def state_dict(self) -> dict:
        return {"ema_steps": self.ema_steps, "latent_scale": self.latent_scale}

    def load_state_dict(self, d: dict) -> None:
        self.ema_steps = int(d.get("ema_steps", 0))
        self.latent_scale = float(d.get("latent_scale", self.latent_scale))

    # ------------------------------------------------------------------ training
    def latents(self, batch: dict) -> torch.Tensor:
        """Scaled latents z of a batch: from `l2i encode`'s (mean, std), or the AE run on the layers."""
        if "mean" in batch:
            mean, std = batch["mean"], batch["std"]
        else:
            mean, std = codec.posterior(self.ae, batch)
        z = mean + std * torch.randn_like(std) if self.cfg.ldm.sample_posterior else mean
        return z.float() * self.latent_scale

    def step(self, batch: dict, step: int) -> StepOutput:
        cfg = self.cfg
        warm = cfg.ldm.warmup_steps
        for g in self.opt.param_groups:
            g["lr"] = self.lr * (min(1.0, (step + 1) / warm) if warm else 1.0)
        z = self.latents(batch)
        captions = drop_captions(list(batch["caption"]), cfg.ldm.caption_dropout)
        context = encode_prompts(self.text_encoder, self.tokenizer, captions)
        noise = torch.randn_like(z)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (z.shape[0],), device=z.device)
        zt = self.noise_scheduler.add_noise(z, noise, t)
        pred = self.model(zt, t, encoder_hidden_states=context).sample
        loss = F.mse_loss(pred.float(), noise)
        dropped = sum(c == "" for c in captions) / max(len(captions), 1)
        return StepOutput({"unet": loss}, {"mse": loss.detach(), "caption_dropped": torch.tensor(dropped)})

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        n = self.ema_steps
        decay = min(self.cfg.ema.decay, (1 + n) / (10 + n)) if self.cfg.ema.enabled else 0.0
        for e, p in zip(self.ema.parameters(), self.unet.parameters()):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(self.ema.buffers(), self.unet.buffers()):
            e.copy_(b)
        self.ema_steps = n + 1

    # ------------------------------------------------------------------ outputs
    @torch.no_grad()
    def generate(self, prompts: list[str], seeds: list[int]) -> codec.Decoded:
        ldm = self.cfg.ldm
        cond = encode_prompts(self.text_encoder, self.tokenizer, prompts)
        uncond = encode_prompts(self.text_encoder, self.tokenizer, [""]) if ldm.val_guidance != 1 else None
        shape = (self.ema.config.in_channels, self.ema.config.sample_size, self.ema.config.sample_size)
        z = ddim_sample(self.ema, schedule_config(self.cfg), cond, uncond, seeds, shape, ldm.val_steps,
                        ldm.val_guidance)
        return codec.decode(self.ae, z / self.latent_scale)

    def validation_image(self, batch: dict) -> np.ndarray:
        """One row per fixed held-out caption (seed = row): F̂ | B̂ | m̂ | composite (or Î for target=image)."""
        from training.export.layers import to_uint8

        out = self.generate(list(batch["caption"]), list(range(len(batch["caption"]))))
        rows = []
        for i in range(len(batch["caption"])):
            if out.mask is None:
                tiles = [to_uint8(out.image[i])]
            else:
                m = out.mask[i]
                comp = m * out.fg[i] + (1 - m) * out.bg[i]
                tiles = [to_uint8(out.fg[i]), to_uint8(out.bg[i]), to_uint8((m * 2 - 1).expand(3, -1, -1)),
                         to_uint8(comp)]
            rows.append(np.concatenate(tiles, axis=1))
        return np.concatenate(rows, axis=0)

    def export(self, out_dir: Path) -> None:
        """RUN2/pipeline/: the whole pipeline with the EMA UNet, replaced atomically (temp dir + rename)."""
        from training.ldm.ddim import ddim_scheduler
        from training.ldm.pipeline import LayeredDiffusionPipeline

        out_dir = Path(out_dir)
        pipe = LayeredDiffusionPipeline(ae=self.ae, unet=self.ema, text_encoder=self.text_encoder,
                                        tokenizer=self.tokenizer, scheduler=ddim_scheduler(schedule_config(self.cfg)),
                                        latent_scale=self.latent_scale)
        tmp, old = out_dir.with_name(f".{out_dir.name}.tmp"), out_dir.with_name(f".{out_dir.name}.old")
        shutil.rmtree(tmp, ignore_errors=True)
        pipe.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)


def measure_latent_scale(ae, batches, n_samples: int, device) -> float:
    """1/std of latents z ~ q(z|x) over the first `n_samples` training samples (ldm.data=shards)."""
    s1 = s2 = count = 0.0
    seen = 0
    for batch in batches:
        batch.pop("_stream", None)
        inputs = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        mean, std = codec.posterior(ae, inputs)
        mean, std = mean.double(), std.double()
        s1 += float(mean.sum())
        s2 += float((mean * mean + std * std).sum())
        count += mean.numel()
        seen += mean.shape[0]
        if seen >= n_samples:
            break
    std = math.sqrt(max(s2 / count - (s1 / count) ** 2, 0.0))
    return 1.0 / std if std > 0 else 1.0
