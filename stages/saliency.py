"""Saliency stage: m = backend(I), quantised to 8 bits so the stored mask.png reproduces it exactly."""
from __future__ import annotations

import logging

import numpy as np

from l2i_pipeline.core.config import Config
from l2i_pipeline.core.sample import Sample
from l2i_pipeline.formats import mask8
from stages.base import ModelStage, sample_seed
from stages.registry import saliency_backend
from stages.saliency_gate import shows_object

log = logging.getLogger(__name__)


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
        try:
            masks = self.backend.predict([s.image for s in todo], [self._seed(s) for s in todo])
        except Exception as e:  # noqa: BLE001 - a failed batch is retried one sample at a time
            log.warning("saliency batch of %d failed (%s); retrying one by one", len(todo), e)
            masks = []
            for s in todo:
                try:
                    masks.append(self.backend.predict([s.image], [self._seed(s)])[0])
                except Exception as e1:  # noqa: BLE001
                    masks.append(None)
                    s.reject(f"saliency:error:{type(e1).__name__}")
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
