"""What a model backend must have: `typing.Protocol` classes, checked where a backend is loaded
(stages/registry.py) so a class that lacks a member is one ConfigError naming it, before any work.

Optional on every backend: `thread_safe = True` when it may be called from several threads at once
because it holds its own lock around the device section only; the runners then overlap one batch's CPU
pre/post work with another batch's device time. Without it, calls into the backend are serialised
(stages/base.py: device_lock).
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class ModelBackend(Protocol):
    """What a model stage (stages/base.py: ModelStage) uses of any backend, the scorer's included."""

    uses_gpu: bool  # in the device actors (True) or in plain CPU tasks (False)

    def setup(self) -> None:
        """Load the model, once per actor (called by the stage's setup, i.e. by the executor)."""

    def describe(self) -> dict[str, Any]:
        """What made the output (name, weights, settings): recorded in each sample's json."""


class SaliencyBackend(Protocol):
    """Built as `Backend(settings: SaliencyConfig)`."""

    uses_gpu: bool

    def check(self) -> None:
        """Fail fast in the driver (and on each node), e.g. a missing weight file, as a clear error."""

    def setup(self) -> None:
        """Load once per actor."""

    def predict(self, images: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        """RGB uint8 HxWx3 images -> float32 HxW maps in [0, 1]. `seeds`: one per image, from the run seed
        and the key; every random draw must come from it."""

    def describe(self) -> dict[str, Any]:
        """Recorded in each sample's json."""


class InpaintBackend(Protocol):
    """Built as `Backend(settings: InpaintConfig, run_seed: int)`. The stage pastes the original back
    outside the mask, so backends need not."""

    uses_gpu: bool

    def check(self) -> None:
        """Fail fast in the driver (and on each node)."""

    def setup(self) -> None:
        """Load once per actor."""

    def inpaint(self, images: list[np.ndarray], masks: list[np.ndarray], keys: list[str]) -> list[np.ndarray]:
        """RGB uint8 images and uint8 HxW masks (255 = fill) -> RGB uint8 images; `keys` seed the draws."""

    def describe(self) -> dict[str, Any]:
        """Recorded in each sample's json."""


def missing_members(cls: object, protocol: type) -> list[str]:
    """The protocol's members `cls` lacks, in the protocol's order: methods not callable on it, attributes
    not of the declared type (only `bool` is declared)."""
    missing = [name for name, value in vars(protocol).items()
               if callable(value) and not name.startswith("_") and not callable(getattr(cls, name, None))]
    for name, tp in protocol.__annotations__.items():
        if tp in ("bool", bool) and not isinstance(getattr(cls, name, None), bool):
            missing.append(f"{name} (a bool)")
    return missing
