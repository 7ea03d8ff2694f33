"""Production background backend: Stable Diffusion 2 inpainting with the empty prompt (paper, III-C).

The paper fed an empty prompt ("background" did not help). With an empty prompt and no negative prompt
classifier-free guidance reduces to the unconditional prediction, so `inpaint.guidance_scale` has no
effect and each step runs the UNet once (see stages/sd2_pipeline.py). Each sample's noise comes from its
own generator seeded by (run seed, key), so a rerun reproduces the same background whatever the batch.
The stage pastes the original back outside the mask; this backend returns the raw model output resized
to the input size.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from l2i_pipeline.core.errors import ConfigError
from stages import sd2_pipeline as sd2
from stages.base import sample_seed  # noqa: F401 - re-exported for callers of this module

if TYPE_CHECKING:
    from stages.config import InpaintConfig

log = logging.getLogger(__name__)


def _model_size(h: int, w: int) -> tuple[int, int]:
    """SD works on multiples of 8 pixels; the working resolution (512) already is one."""
    return max(8, round(h / 8) * 8), max(8, round(w / 8) * 8)


class Sd2Inpainter:
    uses_gpu = True
    thread_safe = True  # the sampling loop runs under self._device; resizing and conversions beside it

    def __init__(self, cfg: InpaintConfig, seed: int):
        self.cfg = cfg
        self.seed = seed
        self.batch_size = cfg.batch_size  # halved on CUDA out-of-memory, then kept for the actor's life
        self.pipe: Any = None
        self.unet: Any = None
        self.decode: Any = None
        self.embeds: torch.Tensor | None = None
        self.device: torch.device | None = None

    # -- driver side --------------------------------------------------------------------------
    def check(self) -> None:
        """Fail fast in the driver: bad settings, or a model directory/component that is missing."""
        if self.cfg.steps < 1:
            raise ConfigError("inpaint.steps must be >= 1")
        if self.cfg.dtype not in ("auto", *sd2.DTYPES):
            raise ConfigError(f"inpaint.dtype {self.cfg.dtype!r}: choose auto, {', '.join(sd2.DTYPES)}")
        if not (self.cfg.device in ("auto", "cpu") or self.cfg.device.startswith("cuda")):
            raise ConfigError(f"inpaint.device {self.cfg.device!r}: choose auto, cpu or cuda[:N]")
        sd2.check_scheduler(self.cfg.scheduler)
        sd2.resolve_model(self.cfg.model, self.cfg.allow_download)

    # -- actor side ---------------------------------------------------------------------------
    def _device_and_dtype(self) -> tuple[torch.device, torch.dtype]:
        name = self.cfg.device
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(name)
        if self.cfg.dtype == "auto":
            return device, torch.float16 if device.type == "cuda" else torch.float32
        return device, sd2.DTYPES[self.cfg.dtype]

    def setup(self) -> None:
        """Load the pipeline once per actor and prepare it for fast inference."""
        device, dtype = self._device_and_dtype()
        model = sd2.resolve_model(self.cfg.model, self.cfg.allow_download)
        self.use_pipeline(sd2.load_pipeline(model, self.cfg.allow_download, dtype), device)

    def use_pipeline(self, pipe: Any, device: torch.device | str) -> None:
        """Adopt an already-built pipeline (setup, tests and the benchmark share this path)."""
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.device = torch.device(device)
        sd2.set_scheduler(pipe, self.cfg.scheduler)
        pipe.set_progress_bar_config(disable=True)
        pipe.to(self.device)
        pipe.unet.set_attn_processor(AttnProcessor2_0())  # SDPA (flash / memory-efficient kernels)
        pipe.vae.set_attn_processor(AttnProcessor2_0())
        if self.device.type == "cuda":
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.vae.to(memory_format=torch.channels_last)
        self.pipe = pipe
        self.unet, self.decode = pipe.unet, pipe.vae.decode
        if self.cfg.compile:  # the UNet runs `steps` times per batch, the VAE decoder once: both compiled
            self.unet = torch.compile(pipe.unet, mode=self.cfg.compile_mode)
            self.decode = torch.compile(pipe.vae.decode, mode=self.cfg.compile_mode)
        self.embeds = sd2.empty_prompt_embedding(pipe, self.device)
        self._device = threading.Lock()

    def inpaint(self, images: list[np.ndarray], masks: list[np.ndarray], keys: list[str]) -> list[np.ndarray]:
        """Fill masks (uint8 HxW, 255 = fill) of RGB uint8 images; one output per input, same size."""
        if not (len(images) == len(masks) == len(keys)):
            raise ValueError(f"inpaint: {len(images)} images, {len(masks)} masks, {len(keys)} keys")
        if self.pipe is None:
            self.setup()
        out: list[np.ndarray | None] = [None] * len(images)
        by_size: dict[tuple[int, int], list[int]] = {}  # a batch needs one size
        for i, img in enumerate(images):
            by_size.setdefault(_model_size(*img.shape[:2]), []).append(i)
        for size, idx in by_size.items():
            for i, result in zip(idx, self._run_with_oom_retry(size, idx, images, masks, keys)):
                out[i] = result
        return out  # type: ignore[return-value]

    def _run_with_oom_retry(self, size, idx, images, masks, keys) -> list[np.ndarray]:
        """Batches of self.batch_size; a CUDA OOM halves the batch and retries instead of failing the shard."""
        results: list[np.ndarray] = []
        start = 0
        while start < len(idx):
            chunk = idx[start:start + self.batch_size]
            oom = False
            try:
                results += self._run_batch(size, [images[i] for i in chunk], [masks[i] for i in chunk],
                                           [keys[i] for i in chunk])
                start += len(chunk)
            except torch.cuda.OutOfMemoryError:
                if len(chunk) == 1:
                    raise
                oom = True
            if oom:  # outside the except block so the exception's frames (and tensors) are released
                self.batch_size = max(1, len(chunk) // 2)
                log.warning("inpaint sd2: CUDA out of memory at batch %d; retrying with batch %d",
                            len(chunk), self.batch_size)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        return results

    def _run_batch(self, size: tuple[int, int], images: list[np.ndarray], masks: list[np.ndarray],
                   keys: list[str]) -> list[np.ndarray]:
        h, w = size
        image01 = torch.from_numpy(np.stack([self._resize(im, h, w, cv2.INTER_AREA) for im in images]))
        image01 = image01.permute(0, 3, 1, 2).float() / 255.0
        mask01 = torch.from_numpy(np.stack([self._resize(m, h, w, cv2.INTER_NEAREST) >= 128 for m in masks]))
        mask01 = mask01[:, None].float()
        generators = [torch.Generator("cpu").manual_seed(sample_seed(k, self.seed)) for k in keys]
        with self._device:
            out01 = sd2.inpaint_single_pass(self.pipe, self.unet, image01, mask01, self.embeds, generators,
                                            self.cfg.steps, self.cfg.vae_batch_size, self.decode)
        out = (out01.numpy() * 255.0).round().astype(np.uint8)
        return [self._resize(o, im.shape[0], im.shape[1], cv2.INTER_CUBIC) for o, im in zip(out, images)]

    @staticmethod
    def _resize(a: np.ndarray, h: int, w: int, interp: int) -> np.ndarray:
        return a if a.shape[:2] == (h, w) else cv2.resize(a, (w, h), interpolation=interp)

    def describe(self) -> dict[str, Any]:
        """Settings recorded in each sample's json; exact (scheduler class, dtype) once set up."""
        loaded = self.pipe is not None
        scheduler = type(self.pipe.scheduler).__name__ if loaded else (self.cfg.scheduler or "model default")
        dtype = {v: k for k, v in sd2.DTYPES.items()}[self.embeds.dtype] if self.embeds is not None else self.cfg.dtype
        return {
            "backend": "sd2",
            "model": self.cfg.model,
            "steps": self.cfg.steps,
            "scheduler": scheduler,
            "dtype": dtype,
            "seed": self.seed,
            "prompt": "",
            "guidance": "none (empty prompt: unconditional prediction)",
        }
