"""Both quality classifiers on one device: prepare inputs on the CPU, score them in batches.

`read_shard` and `ScoreWorker` are what `l2i score` (engine/score.py) runs per shard and per batch; the
inline stage (stages/score.py) uses `Scorer` as a backend (`check`, `setup`, `describe`, `uses_gpu`).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.checkpoint import checkpoint_paths, load_meta
from l2i_pipeline.core import shards
from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.core.gpus import Ask
from l2i_pipeline.core.storage import Store

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


def read_shard(row: dict, input_dir: str | Store, sizes: dict[str, int]) -> Iterator[dict]:
    """Every ok sample of one shard as prepared uint8 inputs per task (CPU side of the pipeline)."""
    from classifiers.features import decode_members, prepare

    name = row["shard"]
    try:
        items = list(shards.iter_output_samples(input_dir, name))
    except OSError as e:
        log.error("shard %s cannot be read (%s); it gets no sidecar", name, e)
        return
    for key, members in items:
        out: dict[str, Any] = {"shard": name, "key": key, "error": ""}
        for task, size in sizes.items():
            try:
                out[task] = prepare(task, size, **decode_members(members, task))
            except Exception as e:  # noqa: BLE001 - one bad sample gets NaN, not a failed job
                out[task] = np.zeros((size, size, 4 if task == "mask" else 3), np.uint8)
                out["error"] = f"{task}:{type(e).__name__}"
        yield out


class ScoreWorker:
    """The worker `l2i score` runs (engine/score.py, through the job frame's executor): both classifiers
    loaded once; batches of prepared inputs -> scores (NaN for a sample that could not be prepared)."""

    def __init__(self, mask_classifier: str | None, inpaint_classifier: str | None, device: str, batch_size: int,
                 num_gpus: float | None = None):
        self.scorer = Scorer(mask_classifier, inpaint_classifier, device, batch_size)
        self.scorer.setup()

    @classmethod
    def ask(cls, mask_classifier, inpaint_classifier, device: str, batch_size: int,
            num_gpus: float | None = None) -> Ask:
        return Ask(num_gpus, None, device)  # None: one GPU when the cluster has or can get GPUs (core/gpus.py)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        bad = np.array([bool(e) for e in batch["error"]])
        out = {"shard": batch["shard"], "key": batch["key"]}
        for task in self.scorer.tasks:
            s = self.scorer.score(task, np.asarray(batch[task]))
            s[bad] = np.nan
            out[SCORE_FIELDS[task]] = s
        return out
