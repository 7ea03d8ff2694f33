"""Production saliency backend: ICON (the paper's salient-object detector) from an official checkpoint.

`saliency.variant` picks ICON-R / ICON-S / ICON-P and `saliency.weights` the matching official
`.weight` file. On CUDA it runs batched under fp16 autocast with channels_last; on CPU in fp32.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from l2i_pipeline.core.config import ConfigError, SaliencyConfig
from l2i_pipeline.models.icon import VARIANTS, WEIGHTS_WHERE, IconSaliency, sha256_file

log = logging.getLogger(__name__)


class IconBackend:
    uses_gpu = True
    thread_safe = True  # IconSaliency runs only the forward pass under its lock

    def __init__(self, cfg: SaliencyConfig):
        self.cfg = cfg
        self.model: IconSaliency | None = None
        self._sha256: str | None = None

    def _weights(self) -> Path:
        if self.cfg.variant not in VARIANTS:
            raise ConfigError(f"saliency.variant {self.cfg.variant!r}: choose one of {sorted(VARIANTS)}")
        expected = VARIANTS[self.cfg.variant].weights_file
        if not self.cfg.weights:
            raise ConfigError(f"saliency.weights is not set; give the path to {expected} ({self.cfg.variant}); "
                              f"{WEIGHTS_WHERE}")
        path = Path(self.cfg.weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"saliency.weights: {path} not found (expected {expected} for {self.cfg.variant}); "
                              f"{WEIGHTS_WHERE}")
        return path

    def check(self) -> None:
        """Driver side, before any work: variant known, weight file present, device name valid."""
        self._weights()
        device = self.cfg.device
        if not (device in ("auto", "cpu") or device.startswith("cuda")):
            raise ConfigError(f"saliency.device {device!r}: choose auto, cpu or cuda[:N]")
        # whether a GPU exists is not the driver's to say: on a cluster its GPU node may join later
        # (core/gpus.py plans the ask); the actor that loads the model checks its own device

    def setup(self) -> None:
        """Actor side: load the checkpoint once (strictly; a wrong file names its keys)."""
        path = self._weights()
        if self.cfg.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(f"saliency.device {self.cfg.device!r} but this process sees no CUDA device")
        try:
            self.model = IconSaliency(self.cfg.variant, path, device=self.cfg.device, batch_size=self.cfg.batch_size)
        except ValueError as e:
            raise ConfigError(f"saliency.weights {path}: {e}") from e
        log.info("ICON %s loaded from %s on %s (%s)", self.cfg.variant, path, self.model.device, self.model.precision)

    def predict(self, images: list[np.ndarray], seeds: list[int] | None = None) -> list[np.ndarray]:
        """ICON draws nothing at random; `seeds` is accepted for the backend contract."""
        if self.model is None:
            self.setup()
        assert self.model is not None
        return self.model.predict(images)

    def describe(self) -> dict[str, Any]:
        path = self._weights()
        if self._sha256 is None:
            self._sha256 = sha256_file(path)
        return {"backend": "icon", "variant": self.cfg.variant, "weights": str(path), "weights_sha256": self._sha256}
