"""The CaT2I-AE as a task of the training loop (protocol in `training/base/loop.py`).

Two optimisers, as in LDM's autoencoder: "ae" (the model; the nll's logvar only with loss.learn_logvar, since
LDM's `configure_optimizers` never steps it and it stays 0) and "disc" (the PatchGAN). Both use the
effective learning rate (`config.effective_lr`: base x batch x world size x accumulation, LDM's --scale_lr).
The generator's adversarial term runs the discriminator's unwrapped module, and each loss is backpropagated
into its own optimiser's parameters only (the loop's `backward(inputs=...)`), so the discriminator's loss
never writes gradients into the autoencoder and vice versa; the discriminator sees detached reconstructions, and
real and fake images in two forwards (as LDM's reference; one concatenated batch would mix their BatchNorm
statistics).
Before `loss.disc_start` neither GAN term exists: weight 0 and the discriminator is not stepped.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from l2i_pipeline.core.errors import ConfigError, NotFound
from l2i_pipeline.core.provenance import differing_keys
from training.ae import losses
from training.ae.lpips_loader import load_lpips, vgg_weights_path
from training.base import checkpoint
from training.base.config import TrainConfig, effective_lr
from training.base.loop import Context, StepOutput
from training.models.ae import CaT2IAE, LayeredOutput, stack_layers
from training.models.discriminator import PatchDiscriminator

log = logging.getLogger(__name__)
LAYERS = ("fg", "bg", "image")


class AEModel(nn.Module):
    """What the "ae" optimiser trains: the autoencoder, and LDM's log-variance of the nll when `learn`."""

    def __init__(self, ae: CaT2IAE, logvar_init: float, learn: bool = False):
        super().__init__()
        self.ae = ae
        self.logvar = nn.Parameter(torch.full((), float(logvar_init)), requires_grad=learn)

    def forward(self, x: torch.Tensor):
        return self.ae(x, sample_posterior=True)


def build_ae(cfg: TrainConfig) -> CaT2IAE:
    a = cfg.ae
    return CaT2IAE(block_out_channels=tuple(a.block_out_channels), layers_per_block=a.layers_per_block,
                   norm_num_groups=a.norm_num_groups, latent_channels=a.latent_channels, head_width=a.head_width,
                   aux_image_head=a.aux_image_head, mid_block_attention=a.mid_block_attention)


def _tile(x: torch.Tensor) -> np.ndarray:
    """One CHW tensor on the [-1, 1] (3 channels) or [0, 1] (1 channel) scale -> uint8 HWC."""
    x = x.detach().float().cpu()
    x = x.repeat(3, 1, 1) if x.shape[0] == 1 else (x.clamp(-1, 1) + 1) / 2
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


class AETask:
    name = "ae"

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.ema_steps = 0

    @staticmethod
    def preflight(cfg: TrainConfig) -> None:
        """Clear errors before any work: the LPIPS trunk file (not needed with loss.lpips_weight=0)."""
        if cfg.loss.lpips_weight > 0:
            vgg_weights_path(cfg.lpips)
        if cfg.ae.init:
            ckpt = checkpoint.resolve_init(cfg.ae.init)
            if not (ckpt / "model.safetensors").is_file():
                raise NotFound(f"--init {ckpt} has no model.safetensors (not a `train ae` checkpoint)")
            theirs = {k: v for k, v in json.loads((ckpt / "state.json").read_text()).get("config", {})
                      .get("ae", {}).items() if k != "init"}
            ours = {k: v for k, v in cfg.to_dict()["ae"].items() if k != "init"}
            diff = differing_keys(theirs, ours, "ae.")
            if diff:
                raise ConfigError(f"--init {ckpt} is a model of another shape; differing keys: {', '.join(diff)}")

    def setup(self, ctx: Context) -> None:
        cfg, self.ctx = self.cfg, ctx
        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
        ae = build_ae(cfg)
        if cfg.train.grad_checkpointing:
            ae.enable_gradient_checkpointing()
        self.model = AEModel(ae, cfg.loss.logvar_init, cfg.loss.learn_logvar)
        self.disc = PatchDiscriminator(3, cfg.loss.disc_channels, cfg.loss.disc_layers)
        init = checkpoint.resolve_init(cfg.ae.init) if cfg.ae.init else None
        if init is not None:  # weights only: this run's optimisers, step and data positions start fresh
            self._load_init(init)
        self.ema = copy.deepcopy(ae).requires_grad_(False).eval() if cfg.ema.enabled else None
        if self.ema is not None and init is not None and (init / "ema.safetensors").is_file():
            self.ema.load_state_dict(load_file(str(init / "ema.safetensors")))
        if self.ema is not None:
            self.ema.to(ctx.device)
        self.lpips = load_lpips(cfg.lpips).to(ctx.device) if cfg.loss.lpips_weight > 0 else None
        self.model_w = ctx.prepare(self.model)
        self.disc_w = ctx.prepare(self.disc)
        t = cfg.train
        betas = (t.adam_beta1, t.adam_beta2)
        lr = effective_lr(t, ctx.world_size)
        disc_lr = effective_lr(t, ctx.world_size, cfg.loss.disc_lr) if cfg.loss.disc_lr is not None else lr
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.opts = {
            "ae": torch.optim.Adam(trained, lr=lr, betas=betas, weight_decay=t.weight_decay),
            "disc": torch.optim.Adam(self.disc.parameters(), lr=disc_lr, betas=betas, weight_decay=t.weight_decay),
        }

    def _load_init(self, ckpt: Path) -> None:
        self.model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        if (ckpt / "disc.safetensors").is_file():
            try:
                self.disc.load_state_dict(load_file(str(ckpt / "disc.safetensors")))
            except RuntimeError:
                log.warning("--init %s: its discriminator has another shape (loss.disc_*); this one starts fresh",
                            ckpt)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opts

    def modules(self) -> dict[str, nn.Module]:
        out = {"model": self.model, "disc": self.disc}
        if self.ema is not None:
            out["ema"] = self.ema
        return out

    def gan_active(self, step: int) -> bool:
        return step >= self.cfg.loss.disc_start and self.cfg.loss.disc_factor > 0

    def step(self, batch: dict, step: int) -> StepOutput:
        lc = self.cfg.loss
        out, posterior = self.model_w(stack_layers(batch["fg"], batch["bg"], batch["mask"]))
        logs: dict[str, torch.Tensor] = {}
        gan = self.gan_active(step)
        logvar = self.model.logvar
        heads = self.model.ae.heads()
        total = lc.kl_weight * losses.per_sample_sum(posterior.kl())
        logs["kl"] = losses.per_sample_sum(posterior.kl())
        fakes, reals = [], []
        for layer in LAYERS:
            pred = getattr(out, layer)
            if pred is None:  # no-sup: no I head, no I loss
                continue
            r = losses.reconstruction_nll(batch[layer], pred, logvar, self.lpips, lc.l1_weight, lc.lpips_weight)
            logs.update({f"{k}_{layer}": v for k, v in r.items()})
            total = total + r["nll"]
            if gan:
                g_loss = -self.disc(pred).mean()  # unwrapped: no DDP bookkeeping for the generator's term
                w = losses.adaptive_weight(r["nll"], g_loss, heads[layer].last_layer, lc.disc_weight)
                total = total + w * lc.disc_factor * g_loss
                logs[f"g_{layer}"], logs[f"d_weight_{layer}"] = g_loss, w
                fakes.append(pred.detach())
                reals.append(batch[layer])
        m = losses.mask_loss(out.mask, batch["mask"], batch["fg"], batch["bg"], lc.mask_l1, lc.mask_comp,
                             lc.mask_lap, lc.comp_eps, lc.lap_levels)
        logs.update(m)
        total = total + lc.mask_weight * m["mask"]
        logs["logvar"] = logvar.detach()
        logs["loss_ae"] = total
        result = {"ae": total}
        if gan:
            real, fake = self.disc_w(torch.cat(reals)), self.disc_w(torch.cat(fakes))
            d_loss = lc.disc_factor * losses.hinge_d_loss(real, fake)
            logs.update(loss_disc=d_loss, logits_real=real.detach().mean(), logits_fake=fake.detach().mean())
            result["disc"] = d_loss
        return StepOutput(result, logs)

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        if self.ema is None:
            return
        d = self.cfg.ema.decay
        for e, p in zip(self.ema.parameters(), self.model.ae.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.ema.buffers(), self.model.ae.buffers()):
            e.copy_(b)
        self.ema_steps += 1

    def state_dict(self) -> dict:
        return {"ema_steps": self.ema_steps, "ema_decay": self.cfg.ema.decay}

    def load_state_dict(self, state: dict) -> None:
        self.ema_steps = int(state.get("ema_steps", 0))

    def export_model(self) -> CaT2IAE:
        return self.ema if self.ema is not None else self.model.ae

    def export(self, out_dir: Path) -> None:
        self.export_model().save_pretrained(str(out_dir), safe_serialization=True)

    @torch.no_grad()
    def validation_image(self, batch: dict) -> np.ndarray:
        """One row per held-out sample: I, F, B, m | I^ (black without the head), F^, B^, m^, C^ = m^F^ + (1-m^)B^."""
        model = self.export_model()
        was_training = model.training
        model.eval()
        out: LayeredOutput = model(stack_layers(batch["fg"], batch["bg"], batch["mask"]), sample_posterior=False)[0]
        model.train(was_training)
        comp = out.composite()
        rows = []
        for i in range(len(batch["key"])):
            image_hat = out.image[i] if out.image is not None else -torch.ones_like(out.fg[i])
            tiles = [batch["image"][i], batch["fg"][i], batch["bg"][i], batch["mask"][i], image_hat, out.fg[i],
                     out.bg[i], out.mask[i], comp[i]]
            rows.append(np.concatenate([_tile(t) for t in tiles], axis=1))
        return np.concatenate(rows, axis=0)
