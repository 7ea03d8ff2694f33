"""Inline quality scoring inside `l2i synthesize` (when `score.mask_classifier`/`inpaint_classifier` are set).

Writes `mask_score`/`inpaint_score` into `sample.meta`, so they land in each sample's json and in the
shard parquet's `meta` column, where `l2i filter` finds them without a sidecar. The inputs are exactly
what is stored: I was round-tripped through its JPEG by the decode stage and m is quantised to 8 bits.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from classifiers.scorer import SCORE_FIELDS, Scorer
from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.core.sample import Sample
from stages.base import ModelStage
from stages.fallback import batch_then_singles

if TYPE_CHECKING:
    from stages.config import Config  # its `score` section: stages/score_settings.py


class ScoreStage(ModelStage):
    name = section = "score"

    def __init__(self, cfg: Config):
        c = cfg.score
        try:
            backend = Scorer(c.mask_classifier, c.inpaint_classifier, c.device, c.batch_size)
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"score: {e}") from e
        super().__init__(cfg, backend)

    def _score(self, todo: list[Sample]) -> list[dict[str, float]]:
        prepared = [self.backend.prepare(s.image, s.mask, s.bg) for s in todo]
        out = [{} for _ in todo]
        for task in self.backend.tasks:
            scores = self.backend.score(task, np.stack([p[task] for p in prepared]))
            for d, v in zip(out, scores):
                d[SCORE_FIELDS[task]] = float(v)
        return out

    def process(self, samples: list[Sample]) -> list[Sample]:
        todo = [s for s in samples if s.ok]
        if not todo:
            return samples
        results = batch_then_singles(self.name, todo, self._score)
        for s, r in zip(todo, results):
            if r is not None:
                s.meta.update(r)
                s.meta["score"] = self.describe
        return samples
