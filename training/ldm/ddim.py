"""DDIM with classifier-free guidance, one generator per sample.

Each sample's starting noise comes from its own `torch.Generator` seeded with its seed, and DDIM with
eta = 0 adds no noise after that, so a batch gives the same latents as its samples one at a time and a
(prompt, seed) pair is reproducible whatever it was batched with. The unconditional branch is the empty
prompt (SD's convention; training drops captions to "" for it); guidance 1 skips it entirely.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

# SD v1's noise schedule (docs/TRAINING.md): T = 1000, scaled-linear betas 0.00085 -> 0.012.
SD_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                   clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")


def ddim_scheduler(config: dict | None = None):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(config or SD_SCHEDULE)


def initial_noise(seeds: list[int], shape: tuple[int, ...], dtype=torch.float32) -> torch.Tensor:
    """(len(seeds), *shape) standard normal noise; sample i depends only on seeds[i] (drawn on CPU)."""
    out = []
    for s in seeds:
        g = torch.Generator(device="cpu").manual_seed(int(s))
        out.append(torch.randn(shape, generator=g, dtype=torch.float32))
    return torch.stack(out).to(dtype)


@torch.no_grad()
def ddim_sample(unet: Callable, scheduler_config: dict, cond: torch.Tensor, uncond: torch.Tensor | None,
                seeds: list[int], latent_shape: tuple[int, int, int], steps: int = 50, guidance: float = 7.5,
                dtype=torch.float32) -> torch.Tensor:
    """Latents (B, C, h, w) for the text embeddings `cond` (B, L, D); `uncond` is the empty prompt's (1, L, D).

    `unet(x, t, encoder_hidden_states=h)` may be a diffusers UNet (its `.sample` is used) or any callable
    returning the predicted noise.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if guidance < 1:
        raise ValueError(f"guidance must be >= 1, got {guidance}")
    scheduler = ddim_scheduler(scheduler_config)  # a fresh one: set_timesteps mutates it
    scheduler.set_timesteps(steps)
    device = cond.device
    latents = initial_noise(seeds, latent_shape).to(device) * scheduler.init_noise_sigma
    n = len(seeds)
    if guidance != 1:
        assert uncond is not None, "guidance > 1 needs the empty prompt's embedding"
        context = torch.cat([uncond.expand(n, -1, -1), cond]).to(dtype)
    else:
        context = cond.to(dtype)

    def eps_of(x: torch.Tensor, t) -> torch.Tensor:
        out = unet(x.to(dtype), t, encoder_hidden_states=context)
        return (out.sample if hasattr(out, "sample") else out).float()

    for t in scheduler.timesteps:
        if guidance == 1:
            eps = eps_of(latents, t)
        else:
            eps_u, eps_c = eps_of(torch.cat([latents, latents]), t).chunk(2)
            eps = eps_u + guidance * (eps_c - eps_u)
        latents = scheduler.step(eps, t, latents, eta=0.0).prev_sample
    return latents
