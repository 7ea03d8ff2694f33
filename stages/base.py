"""The stage contract: declared resources, `setup()` once per actor, `__call__(batch) -> batch`.

Subclasses implement `process(samples)`; it must never raise for one bad sample: reject it instead.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from l2i_pipeline.core.config import Config
from l2i_pipeline.core.sample import Sample, from_batch, to_batch
from stages.protocols import ModelBackend

log = logging.getLogger(__name__)


def sample_seed(key: str, run_seed: int) -> int:
    """A 63-bit seed from the run seed and the sample key, stable across processes, batches and machines:
    every random draw of a stage derives from it, so a resumed run writes the same bytes."""
    digest = hashlib.sha256(f"{run_seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass
class Resources:
    cpus: float = 1.0
    gpus: float | None = 0.0  # per actor; None: its share of one GPU (core/gpus.py says when GPUs are asked)
    batch_size: int = 16
    num_actors: int | None = 0  # 0: a stateless CPU task; else in the device actors (>= 1: pool size; None: per GPU)
    device: str = "cpu"  # auto | cpu | cuda[:N]: with gpus, the model's GPU ask (core/gpus.Ask)


class Stage(ABC):
    name = "stage"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.resources = Resources()
        self._ready = False

    def setup(self) -> None:  # noqa: B027 - an optional hook: most CPU stages load nothing
        """Load models etc. Not called directly: `start()` calls it once."""

    @property
    def ready(self) -> bool:
        """Whether `setup()` has run in this process."""
        return self._ready

    def start(self) -> None:
        """setup() once (later calls do nothing). The executors call it: the device actor when it is built
        (engine/runner.py), the local runner's stage thread on its first batch (through `run`)."""
        if not self._ready:
            self.setup()
            self._ready = True

    @abstractmethod
    def process(self, samples: list[Sample]) -> list[Sample]:
        """Transform a batch; reject bad samples with a reason instead of raising."""

    def run(self, samples: list[Sample]) -> list[Sample]:
        self.start()
        return self.process(samples)

    def run_all(self, samples: list[Sample]) -> list[Sample]:
        """Every sample through this stage in batches of its declared batch size (single-process use)."""
        bs = self.resources.batch_size
        return [x for i in range(0, len(samples), bs) for x in self.run(samples[i:i + bs])]

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Ray Data: a row is a whole batch of the pipeline, which may exceed this stage's batch size."""
        return to_batch(self.run_all(from_batch(batch)))


def guarded(stage_name: str, sample: Sample, fn, *args) -> bool:
    """Run fn(sample, *args); an unexpected exception rejects that sample only. Returns sample.ok."""
    try:
        fn(sample, *args)
    except Exception as e:  # noqa: BLE001 - one bad sample must not stop the job
        log.warning("%s: sample %s rejected: %s: %s", stage_name, sample.key, type(e).__name__, e)
        sample.reject(f"{stage_name}:error:{type(e).__name__}")
    return sample.ok


class PerSampleStage(Stage):
    """A CPU stage that applies `apply(sample, cfg)` to each ok sample, rejecting the ones that raise."""

    @abstractmethod
    def apply(self, sample: Sample) -> None:
        """Fill or reject one ok sample; an exception rejects it with the stage's name."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.resources = Resources(cpus=1, batch_size=16)

    def process(self, samples: list[Sample]) -> list[Sample]:
        for s in samples:
            if s.ok:
                guarded(self.name, s, self.apply)
        return samples


class ModelStage(Stage):
    """A stage around a config-selected backend: in the device actors when it uses a GPU, else in tasks."""

    section = ""  # the config section naming the backend: "saliency" | "inpaint"

    def __init__(self, cfg: Config, backend: ModelBackend):
        super().__init__(cfg)
        self.backend = backend
        c = getattr(cfg, self.section)
        gpus = c.num_gpus if backend.uses_gpu else 0.0
        # weight-free CPU backends need no actor: plain tasks scale with the cluster's CPUs
        actors = c.num_actors if backend.uses_gpu else 0
        self.resources = Resources(cpus=1, gpus=gpus, batch_size=c.batch_size, num_actors=actors,
                                   device=c.device if backend.uses_gpu else "cpu")
        self.describe: dict = {}

    @property
    def thread_safe(self) -> bool:
        """The backend guards its own device section (registry.py), so batches may share the stage."""
        return getattr(self.backend, "thread_safe", False) is True

    def setup(self) -> None:
        self.backend.setup()
        self.describe = self.backend.describe()


_DEVICE_LOCKS: dict[int, threading.Lock] = {}
_GUARD = threading.Lock()


def device_lock(stage: Stage) -> AbstractContextManager:
    """The lock that serialises calls into a model stage whose backend does not guard its own device.

    One per backend object in this process, so every stage calling the same backend (the peel stage calls
    the saliency and inpaint stages, stages/peel.py) waits on the same lock; a no-op for other stages."""
    if not isinstance(stage, ModelStage) or stage.thread_safe:
        return nullcontext()
    with _GUARD:
        return _DEVICE_LOCKS.setdefault(id(stage.backend), threading.Lock())
