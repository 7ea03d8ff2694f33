"""Both quality classifiers on one device: prepare inputs on the CPU, score them in batches.

Used by the Ray actors of `l2i score` and by the inline stage (stages/score.py), which treats it as a
backend (`check`, `setup`, `describe`, `uses_gpu`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.checkpoint import checkpoint_paths, load_meta
from l2i_pipeline.core.errors import ConfigError

log = logging.getLogger(__name__)

TASKS = ("mask", "inpaint")


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
SCORE_FIELDS = {"mask": "mask_score", "inpaint": "inpaint_score"}


class Scorer:
    uses_gpu = True  # the runner asks for GPUs only when the cluster has them

    def __init__(self, mask_classifier: str | Path | None, inpaint_classifier: str | Path | None,
                 device: str = "auto", batch_size: int = 64):
        self.paths = {t: p for t, p in zip(TASKS, (mask_classifier, inpaint_classifier)) if p}
        if not self.paths:
            raise ConfigError("give at least one classifier checkpoint (mask and/or inpaint)")
        self.device_name, self.batch_size = device, batch_size
        self.meta = self.check()
        self.sizes = {t: int(m["image_size"]) for t, m in self.meta.items()}
        self.models: dict[str, Any] = {}
        self._digests: dict[str, str] | None = None

    def check(self) -> dict[str, dict[str, Any]]:
        """Fail fast in the driver: files present and each checkpoint of the task it is given for."""
        meta = {}
        for task, path in self.paths.items():
            m = load_meta(path)
            if m.get("task") != task:
                raise ConfigError(f"{path} is a {m.get('task')!r} classifier, given as the {task} classifier")
            meta[task] = m
        return meta

    @property
    def tasks(self) -> list[str]:
        return list(self.paths)

    def setup(self) -> None:
        from classifiers.checkpoint import load_checkpoint
        from classifiers.model import pick_device

        self.device = pick_device(self.device_name)
        for task, path in self.paths.items():
            self.models[task], _ = load_checkpoint(path, self.device)
        log.info("classifiers %s loaded on %s", self.tasks, self.device)

    def digests(self) -> dict[str, str]:
        """sha256 of each classifier's weights: what a score was made with (its provenance)."""
        if self._digests is None:
            self._digests = {t: _sha256(checkpoint_paths(p)[0]) for t, p in self.paths.items()}
        return self._digests

    def describe(self) -> dict[str, Any]:
        return {task: {"checkpoint": checkpoint_paths(p)[0].name, "encoding": self.meta[task]["encoding"],
                       "threshold": self.meta[task].get("threshold"), "created": self.meta[task].get("created"),
                       "sha256": self.digests()[task]} for task, p in self.paths.items()}

    def prepare(self, image: np.ndarray | None, mask: np.ndarray | None, bg: np.ndarray | None
                ) -> dict[str, np.ndarray]:
        from classifiers.features import prepare

        return {t: prepare(t, self.sizes[t], image=image, mask=mask, bg=bg) for t in self.tasks}

    def score(self, task: str, inputs: np.ndarray) -> np.ndarray:
        """P(good) of prepared inputs (N x H x W x C uint8)."""
        from classifiers.features import predict

        if not self.models:
            self.setup()
        return predict(self.models[task], inputs, self.device, self.batch_size)
