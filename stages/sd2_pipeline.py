"""Stable Diffusion 2 inpainting with the empty prompt: model checks, loading, and the single-pass loop.

Why a loop of our own: with an empty prompt and no negative prompt, classifier-free guidance computes
`uncond + g * (cond - uncond)` where cond == uncond, i.e. the unconditional prediction. Running the UNet
once per step on the unconditional batch gives the same output at half the UNet work. Everything else
(preprocessing, latents, mask latents, scheduler, decode) is the pipeline's own code, called in the same
order with the same generators, so the result matches `pipe(prompt="", guidance_scale=7.5)`
(tests/stages/test_inpaint_sd2.py checks this).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from l2i_pipeline.core.config import ConfigError

HUB_HINT = (
    "SD2 inpainting comes from https://huggingface.co/stabilityai/stable-diffusion-2-inpainting: on a machine "
    "with access run `huggingface-cli download stabilityai/stable-diffusion-2-inpainting --local-dir DIR` and set "
    "inpaint.model=DIR (or pre-fill the Hugging Face cache, or set inpaint.allow_download=true)"
)
# Component directory -> files of which at least one must exist there (any variant/shard counts).
_COMPONENTS: dict[str, tuple[str, ...]] = {
    "unet": ("config.json", "diffusion_pytorch_model*.safetensors|diffusion_pytorch_model*.bin"),
    "vae": ("config.json", "diffusion_pytorch_model*.safetensors|diffusion_pytorch_model*.bin"),
    "text_encoder": ("config.json", "model*.safetensors|pytorch_model*.bin"),
    "tokenizer": ("vocab.json|tokenizer.json",),
    "scheduler": ("scheduler_config.json",),
}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _looks_like_hub_id(model: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", model)) and not model.startswith(".")


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local Hugging Face cache snapshot of repo_id, or None; never touches the network."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure here means "not usable from the cache"
        return None


def resolve_model(model: str, allow_download: bool) -> Path | str:
    """Local directory to load from (checked), or the hub id itself when a download is allowed."""
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"inpaint.model {model!r} is a file; it must be a diffusers-format directory. {HUB_HINT}")
        check_model_dir(path)
        return path
    if not _looks_like_hub_id(model):
        raise ConfigError(f"inpaint.model directory not found: {path}. {HUB_HINT}")
    snapshot = _cached_snapshot(model)
    if snapshot is not None:
        check_model_dir(snapshot)
        return snapshot
    if allow_download:
        return model
    raise ConfigError(
        f"inpaint.model {model!r} is neither a local directory nor in the Hugging Face cache "
        f"(HF_HOME / HF_HUB_CACHE) and inpaint.allow_download is false. {HUB_HINT}"
    )


def check_model_dir(path: Path) -> None:
    """Raise one ConfigError listing every missing component file of a diffusers SD2-inpainting directory."""
    if not (path / "model_index.json").is_file():
        raise ConfigError(f"{path} is not a diffusers-format pipeline directory (no model_index.json). {HUB_HINT}")
    missing = []
    for comp, needs in _COMPONENTS.items():
        for alternatives in needs:
            if not any(any((path / comp).glob(pattern)) for pattern in alternatives.split("|")):
                missing.append(f"{comp}/{alternatives.replace('|', ' or ')}")
    if missing:
        raise ConfigError(f"SD2 inpainting model at {path} is missing: {', '.join(missing)}. {HUB_HINT}")
    in_channels = json.loads((path / "unet" / "config.json").read_text()).get("in_channels")
    if in_channels != 9:
        raise ConfigError(
            f"{path}/unet has in_channels={in_channels}; an inpainting UNet has 9 (latents, mask, masked image). "
            f"Is this a text-to-image model? {HUB_HINT}"
        )


def check_scheduler(name: str | None) -> None:
    if name is None:
        return
    import diffusers

    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        raise ConfigError(f"inpaint.scheduler {name!r} is not a diffusers scheduler class (e.g. DDIMScheduler)")


def _variant(path: Path | str) -> str | None:
    """'fp16' when a local unet only has fp16-variant weights (some downloads fetch just those)."""
    unet = Path(path) / "unet"
    if not unet.is_dir():
        return None
    files = [p.name for p in unet.glob("diffusion_pytorch_model*")]
    plain = [f for f in files if ".fp16." not in f]
    return "fp16" if files and not plain else None


def load_pipeline(model: Path | str, allow_download: bool, dtype: torch.dtype):
    """StableDiffusionInpaintPipeline from a directory (or hub id), safety checker off."""
    from diffusers import StableDiffusionInpaintPipeline

    return StableDiffusionInpaintPipeline.from_pretrained(
        str(model),
        torch_dtype=dtype,
        variant=_variant(model),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        local_files_only=not allow_download,
    )


def set_scheduler(pipe: Any, name: str | None) -> None:
    if name is not None:
        import diffusers

        pipe.scheduler = getattr(diffusers, name).from_config(pipe.scheduler.config)


@torch.no_grad()
def empty_prompt_embedding(pipe: Any, device: torch.device) -> torch.Tensor:
    """The (1, tokens, dim) embedding of "" -- computed once per actor."""
    embeds, _ = pipe.encode_prompt("", device, 1, False)
    return embeds


@torch.no_grad()
def inpaint_single_pass(
    pipe: Any,
    unet: torch.nn.Module,
    image01: torch.Tensor,
    mask01: torch.Tensor,
    embeds: torch.Tensor,
    generators: list[torch.Generator],
    steps: int,
    vae_batch: int | None = None,
    decode: Any = None,
) -> torch.Tensor:
    """Inpaint a batch with the empty prompt, one UNet call per step.

    image01: (B, 3, H, W) float in [0, 1]; mask01: (B, 1, H, W), 1 = fill; H, W multiples of 8.
    `unet` is pipe.unet or a compiled wrapper of it. Returns (B, H, W, 3) float32 numpy-ready, in [0, 1].
    `vae_batch` decodes the latents that many at a time: the decoder's activations at 512 px are several
    times the UNet's, so a chunked decode lets a larger UNet batch fit. `decode`: pipe.vae.decode or a
    compiled wrapper of it.
    The calls below mirror StableDiffusionInpaintPipeline.__call__ at strength 1 in order, so each
    sample's generator is consumed exactly as the pipeline would consume it.
    """
    b, _, h, w = image01.shape
    device, dtype = embeds.device, embeds.dtype
    scheduler = pipe.scheduler
    scheduler.set_timesteps(steps, device=device)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)

    image = pipe.image_processor.preprocess(image01, height=h, width=w).to(torch.float32)
    (latents,) = pipe.prepare_latents(b, pipe.vae.config.latent_channels, h, w, dtype, device, generators)
    mask = pipe.mask_processor.preprocess(mask01, height=h, width=w)
    mask, masked_latents = pipe.prepare_mask_latents(
        mask, image * (mask < 0.5), b, h, w, dtype, device, generators, False
    )
    step_kwargs = pipe.prepare_extra_step_kwargs(generators, 0.0)
    cond = embeds.expand(b, -1, -1)
    for t in scheduler.timesteps:
        model_in = torch.cat([scheduler.scale_model_input(latents, t), mask, masked_latents], dim=1)
        noise_pred = unet(model_in, t, encoder_hidden_states=cond, return_dict=False)[0]
        latents = scheduler.step(noise_pred, t, latents, **step_kwargs, return_dict=False)[0]
    latents = latents / pipe.vae.config.scaling_factor
    decode = decode or pipe.vae.decode
    decoded = torch.cat([decode(z, return_dict=False)[0] for z in latents.split(vae_batch or b)])
    return pipe.image_processor.postprocess(decoded, output_type="pt").float().permute(0, 2, 3, 1).cpu()
