"""Telea inpainting (OpenCV): the CPU, weight-free background backend; `sd2` is the paper's model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from l2i_pipeline.formats import mask8

if TYPE_CHECKING:
    from stages.config import InpaintConfig


@dataclass
class TeleaSettings:
    radius: int = 5  # telea: inpainting radius


RANGES = {"radius": (1, 64)}  # prefixed with the section's name by stages/config.py
WORK = 256  # Telea's cost grows with the hole; fill at this size, then paste back at full size


class TeleaInpainter:
    uses_gpu = False

    def __init__(self, cfg: InpaintConfig, seed: int = 0):
        self.cfg = cfg

    def check(self) -> None:
        """Nothing to load."""

    def setup(self) -> None:
        cv2.setNumThreads(1)

    def _one(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        h, w = mask.shape
        scale = min(1.0, WORK / max(h, w))
        if scale < 1.0:
            size = (round(w * scale), round(h * scale))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            small_mask = mask8.binary(cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST) > 0)
            small_mask = cv2.dilate(small_mask, np.ones((3, 3), np.uint8))  # cover resampled edges
            filled = cv2.inpaint(small, small_mask, max(1, round(self.cfg.radius * scale)), cv2.INPAINT_TELEA)
            return cv2.resize(filled, (w, h), interpolation=cv2.INTER_CUBIC)
        return cv2.inpaint(image, mask, self.cfg.radius, cv2.INPAINT_TELEA)

    def inpaint(self, images: list[np.ndarray], masks: list[np.ndarray], keys: list[str]) -> list[np.ndarray]:
        return [self._one(im, m) for im, m in zip(images, masks)]

    def describe(self) -> dict:
        return {"backend": "telea", "radius": self.cfg.radius, "work_size": WORK}
