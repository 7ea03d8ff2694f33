"""The inline score stage's settings (stages/score.py), in a module without torch; composed into the
pipeline config by stages/config.py."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ScoreConfig:
    mask_classifier: str | None = None  # checkpoint of `l2i classifiers train --task mask`
    inpaint_classifier: str | None = None
    batch_size: int = 64
    num_actors: int | None = None  # as for saliency: the classifiers ride in the same device actors
    num_gpus: float | None = None
    device: str = "auto"


RANGES = {
    "score.batch_size": (1, 65536),
    "score.num_actors": (1, 4096),
    "score.num_gpus": (0.0, 8.0),
}
