"""End-to-end ICON saliency for RGB images of any size, matching the official test script.

Official preprocessing: the image in BGR order (cv2.imread), normalized with the constants below
(applied to BGR as released), then `cv2.resize` (bilinear) of the normalized float image to the square
input; the pred4 logits are upsampled bilinearly from the network's S/4 grid straight to the original
size and passed through a sigmoid.
"""
from __future__ import annotations

import threading
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .loading import load_icon

MEAN_BGR = np.array([124.55, 118.90, 102.94], dtype=np.float64)
STD_BGR = np.array([56.77, 55.97, 57.50], dtype=np.float64)
AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def preprocess(rgb: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 HxWx3 -> normalized BGR float32 (3, size, size), computed in float64 as the original."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 HxWx3 image, got {rgb.dtype} {rgb.shape}")
    x = (rgb[:, :, ::-1].astype(np.float64) - MEAN_BGR) / STD_BGR
    x = cv2.resize(x, dsize=(size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


class IconSaliency:
    """Batched ICON inference. On CUDA: autocast (fp16 by default) and channels_last; fp32 on CPU."""

    def __init__(self, variant: str, checkpoint: str | Path | dict, device: str = "cpu", batch_size: int = 16,
                 precision: str = "auto"):
        self.device = resolve_device(device)
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        if precision not in AMP_DTYPES:
            raise ValueError(f"precision must be one of {sorted(AMP_DTYPES)} or auto, got {precision!r}")
        self.precision = precision
        self.batch_size = max(1, int(batch_size))
        self.model = load_icon(variant, checkpoint, self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.size = self.model.input_size
        self.lock = threading.Lock()

    def _autocast(self):
        dtype = AMP_DTYPES[self.precision]
        return nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    @torch.inference_mode()
    def _run(self, images: list[np.ndarray], sigmoid: bool) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            x = torch.from_numpy(np.stack([preprocess(im, self.size) for im in chunk]))
            with self.lock:  # the device section: callers' preprocessing overlaps it (thread_safe backends)
                x = x.to(self.device)
                if self.device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                with self._autocast():
                    low = self.model.head_logits(x)
                low = low.float()
                for i, im in enumerate(chunk):
                    y = F.interpolate(low[i:i + 1], size=im.shape[:2], mode="bilinear")[0, 0]
                    out.append((torch.sigmoid(y) if sigmoid else y).cpu().numpy().astype(np.float32))
        return out

    def predict_logits(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """pred4 logits at each image's own size (float32 HxW)."""
        return self._run(images, sigmoid=False)

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Saliency maps, float32 HxW in [0, 1], one per RGB uint8 HxWx3 image."""
        return self._run(images, sigmoid=True)
