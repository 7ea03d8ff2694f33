"""Inpaint stage: B = backend(I, m~), then the original pixels pasted back outside m~ (B = I there)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from l2i_pipeline.core.sample import Sample
from stages.base import ModelStage
from stages.fallback import batch_then_singles
from stages.registry import inpaint_backend

if TYPE_CHECKING:
    from stages.config import Config


@dataclass
class InpaintBackendChoice:
    backend: str = "telea"  # telea | sd2 | package.module:Class (stages/registry.py)


@dataclass
class InpaintSettings:
    """The stage's own keys; stages/config.py puts the backends' keys between these and `backend`."""

    feather: int = 0  # pixels of feathered seam when pasting the original back
    # sd2: the stage alone peaks at 32-48 on an H100 (issue 16), but on Ray coarser batches cost pipeline
    # fill and drain (bench_pipeline_sim.py: steady busy 0.92 vs 0.96 at 60 ms/img); measure with make bench-gpu
    batch_size: int = 8
    num_actors: int | None = None  # as for saliency
    num_gpus: float | None = None
    device: str = "auto"


RANGES = {  # prefixed with the section's name by stages/config.py
    "feather": (0, 256),
    "batch_size": (1, 4096),
    "num_actors": (1, 4096),
    "num_gpus": (0.0, 8.0),
}


def paste_back(image: np.ndarray, generated: np.ndarray, inpaint_mask: np.ndarray, feather: int = 0) -> np.ndarray:
    """Generated pixels inside m~, the original outside it, exactly.

    With `feather` > 0 the generated content fades in over that many pixels *inside* the mask, so the
    seam is soft while B == I still holds everywhere outside m~.
    """
    inside = inpaint_mask > 0
    if feather <= 0:
        return np.where(inside[..., None], generated, image).astype(np.uint8)
    dist = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
    alpha = np.clip(dist / float(feather), 0, 1)[..., None]
    out = alpha * generated.astype(np.float32) + (1 - alpha) * image.astype(np.float32)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    out[~inside] = image[~inside]
    return out


class InpaintStage(ModelStage):
    name = section = "inpaint"

    def __init__(self, cfg: Config):
        super().__init__(cfg, inpaint_backend(cfg))

    def _generate(self, todo: list[Sample]) -> list[np.ndarray]:
        return self.backend.inpaint([s.image for s in todo], [s.inpaint_mask for s in todo], [s.key for s in todo])

    def process(self, samples: list[Sample]) -> list[Sample]:
        todo = [s for s in samples if s.ok]
        if not todo:
            return samples
        for s, gen in zip(todo, batch_then_singles(self.name, todo, self._generate)):
            if gen is None:
                continue
            if gen.shape != s.image.shape or gen.dtype != np.uint8:
                s.reject("inpaint:bad_output")
                continue
            s.bg = paste_back(s.image, gen, s.inpaint_mask, self.cfg.inpaint.feather)
            s.meta["inpaint"] = {**self.describe, "feather": self.cfg.inpaint.feather}
        return samples
