"""The stage contract: declared resources, `setup()` once per actor, `__call__(batch) -> batch`.

Subclasses implement `process(samples)`; it must never raise for one bad sample: reject it instead.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from l2i_pipeline.config import Config
from l2i_pipeline.sample import Sample, from_batch, to_batch

log = logging.getLogger(__name__)


@dataclass
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0  # per actor; the runner asks for it only when the cluster has GPUs
    batch_size: int = 16
    num_actors: int = 0  # 0: a stateless CPU task; >= 1: an actor pool of that size


class Stage:
    name = "stage"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.resources = Resources()
        self._ready = False

    def setup(self) -> None:
        """Load models etc. Called once per actor (or once per process for the local runner)."""

    def process(self, samples: list[Sample]) -> list[Sample]:
        raise NotImplementedError

    def run(self, samples: list[Sample]) -> list[Sample]:
        if not self._ready:
            self.setup()
            self._ready = True
        return self.process(samples)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return to_batch(self.run(from_batch(batch)))


def guarded(stage_name: str, sample: Sample, fn, *args) -> bool:
    """Run fn(sample, *args); an unexpected exception rejects that sample only. Returns sample.ok."""
    try:
        fn(sample, *args)
    except Exception as e:  # noqa: BLE001 - one bad sample must not stop the job
        log.warning("%s: sample %s rejected: %s: %s", stage_name, sample.key, type(e).__name__, e)
        sample.reject(f"{stage_name}:error:{type(e).__name__}")
    return sample.ok
