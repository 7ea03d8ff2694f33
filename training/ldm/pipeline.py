"""`LayeredDiffusionPipeline`: text -> two-layer image (F̂, B̂, m̂, Î), one `from_pretrained` away.

A diffusers `DiffusionPipeline` subclass, the convention users expect: `RUN2/pipeline/` holds ae, unet,
text_encoder, tokenizer, scheduler and `model_index.json` (which also records `latent_scale`, the
1/std of the training latents). Sampling is DDIM with classifier-free guidance (training/ldm/ddim.py).
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DiffusionPipeline

import training.latents.codec as codec
import training.models.ae  # noqa: F401  (diffusers loads a custom component class only from an imported module)
from l2i_pipeline.core.errors import ConfigError, NotFound
from training.export.layers import Layers, to_uint8
from training.ldm.ddim import ddim_sample
from training.ldm.text import encode_prompts

COMPONENTS = ("ae", "unet", "text_encoder", "tokenizer", "scheduler")


class LayeredDiffusionPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "text_encoder->unet->ae"

    def __init__(self, ae, unet, text_encoder, tokenizer, scheduler, latent_scale: float = 1.0):
        super().__init__()
        self.register_modules(ae=ae, unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)
        self.register_to_config(latent_scale=float(latent_scale))

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> LayeredDiffusionPipeline:
        """`from_pretrained` with one clear error for a missing dir or component, and the checks sampling needs;
        `path` may be the URL of an export a URL run dir committed (fetched once; training/base/runstore.py)."""
        from training.base.runstore import fetched

        root = fetched(path)
        if not (root / "model_index.json").is_file():
            raise NotFound(f"not a pipeline dir (no model_index.json): {root} (expected RUN2/pipeline from "
                           f"`l2i train ldm`)")
        for name in COMPONENTS:
            if not (root / name).is_dir():
                raise NotFound(f"pipeline dir {root} has no {name}/")
        pipe = cls.from_pretrained(root, dtype=dtype)
        pipe.check()
        return pipe.to(device)

    def check(self) -> None:
        have, want = codec.latent_channels(self.ae), self.unet.config.in_channels
        if have != want:
            raise ConfigError(f"the autoencoder has {have} latent channels but the UNet takes {want}")

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        s = self.unet.config.sample_size
        return (self.unet.config.in_channels, s, s)

    @torch.no_grad()
    def embed(self, prompts: list[str]) -> torch.Tensor:
        return encode_prompts(self.text_encoder, self.tokenizer, prompts).to(self.unet.dtype)

    @torch.no_grad()
    def __call__(self, prompts: list[str], seeds: list[int], steps: int = 50, guidance: float = 7.5,
                 latent_size: int | None = None) -> list[Layers]:
        """One `Layers` per (prompt, seed) pair; the same pair gives the same pixels in any batch."""
        if len(prompts) != len(seeds):
            raise ValueError("one seed per prompt")
        shape = self.latent_shape if latent_size is None else (self.latent_shape[0], latent_size, latent_size)
        cond = self.embed(prompts)
        uncond = self.embed([""]) if guidance != 1 else None
        z = ddim_sample(self.unet, self.scheduler.config, cond, uncond, seeds, shape, steps, guidance,
                        dtype=self.unet.dtype)
        out = codec.decode(self.ae, (z / self.config.latent_scale).to(self.ae.dtype))
        def u8(t, i):
            return None if t is None else to_uint8(t[i])

        return [Layers(fg=u8(out.fg, i), bg=u8(out.bg, i), image=u8(out.image, i),
                       mask=None if out.mask is None else out.mask[i, 0].float().cpu().numpy())
                for i in range(len(prompts))]
