"""Saliency stage: m = backend(I), quantised to 8 bits so the stored mask.png reproduces it exactly."""
from __future__ import annotations

import numpy as np

from l2i_pipeline.core.config import Config
from l2i_pipeline.core.sample import Sample
from l2i_pipeline.formats import mask8
from stages.base import ModelStage, sample_seed
from stages.fallback import batch_then_singles
from stages.registry import saliency_backend
from stages.saliency_gate import shows_object


class SaliencyStage(ModelStage):
    name = section = "saliency"

    def __init__(self, cfg: Config):
        super().__init__(cfg, saliency_backend(cfg))

    def _seed(self, s: Sample) -> int:
        return sample_seed(s.key, self.cfg.seed)

    def process(self, samples: list[Sample]) -> list[Sample]:
        todo = [s for s in samples if s.ok]
        if not todo:
            return samples
        masks = batch_then_singles(self.name, todo, lambda xs: self.backend.predict(
            [s.image for s in xs], [self._seed(s) for s in xs]))
        for s, m in zip(todo, masks):
            if m is None:
                continue
            if m.shape != s.image.shape[:2] or not np.isfinite(m).all():
                s.reject("saliency:bad_output")
                continue
            s.meta["saliency"] = self.describe
            m = mask8.quantize(m)
            # one gate for every backend: no foreground without evidence in the image (saliency_gate.py)
            if not shows_object(s.image, m, self.cfg.layers.threshold):
                s.reject("saliency:no_salient_object")
                continue
            s.mask = m
        return samples
