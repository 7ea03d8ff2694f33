"""The `sd2` inpainting backend's settings (stages/inpaint_sd2.py), in a module without torch so that
loading a config stays fast. Composed into the `inpaint` section by stages/config.py."""
from __future__ import annotations

from dataclasses import dataclass

from l2i_pipeline.core.errors import ConfigError


@dataclass
class Sd2Settings:
    model: str = "stabilityai/stable-diffusion-2-inpainting"  # sd2: diffusers dir or HF id (local cache)
    allow_download: bool = False  # sd2: let diffusers fetch the model when not cached
    steps: int = 50
    scheduler: str | None = None  # sd2: diffusers scheduler class name; None keeps the model's own
    guidance_scale: float = 7.5  # sd2: irrelevant with the empty prompt (see stages/inpaint_sd2.py)
    dtype: str = "auto"  # auto (fp16 on CUDA, fp32 on CPU) | fp16 | bf16 | fp32
    compile: bool = False  # sd2: torch.compile the UNet and the VAE decoder (the first batch compiles)
    compile_mode: str = "default"  # sd2: torch.compile mode; "reduce-overhead" replays CUDA graphs
    vae_batch_size: int | None = None  # sd2: decode latents this many at a time (None: the whole batch)


RANGES = {  # prefixed with the section's name by stages/config.py
    "steps": (1, 1000),
    "guidance_scale": (0.0, 100.0),
    "vae_batch_size": (1, 4096),
}
RUNTIME_KEYS = {"compile", "compile_mode", "vae_batch_size"}  # speed only: a resumed run may change them
DTYPES = ("auto", "fp16", "bf16", "fp32")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


def validate(s: Sd2Settings, section: str = "inpaint") -> None:
    if s.dtype not in DTYPES:
        raise ConfigError(f"config key '{section}.dtype' = {s.dtype!r}: allowed {', '.join(DTYPES)}")
    if s.compile_mode not in COMPILE_MODES:
        raise ConfigError(f"config key '{section}.compile_mode' = {s.compile_mode!r}: "
                          f"allowed {', '.join(COMPILE_MODES)}")


HELP = [f"inpaint.dtype = 'auto'  ({', '.join(DTYPES)})",
        f"inpaint.compile = False, inpaint.compile_mode = 'default'  ({', '.join(COMPILE_MODES)})"]
