"""Backends by config name. A new backend is one line here plus its module.

Saliency backend: `__init__(cfg: SaliencyConfig)`, `check()` (fail fast in the driver, e.g. a missing
weight file), `setup()` (load once per actor), `predict(list[RGB uint8 HxWx3], seeds) -> list[float32 HxW
in [0,1]]` (seeds: one per image, from the run seed and the key; every random draw must come from it),
`describe() -> dict` (recorded in each sample's json), attribute `uses_gpu`.

Inpaint backend: `__init__(cfg: InpaintConfig, seed: int)`, `check()`, `setup()`,
`inpaint(images, masks, keys) -> list[RGB uint8]` (masks: uint8 HxW, 255 = fill), `describe()`,
`uses_gpu`. The stage pastes the original back outside the mask, so backends need not.
"""
from __future__ import annotations

import importlib

from l2i_pipeline.core.config import ConfigError

SALIENCY = {
    "classical": "stages.saliency_classical:ClassicalSaliency",
    "icon": "stages.saliency_icon:IconBackend",
}
INPAINT = {
    "telea": "stages.inpaint_telea:TeleaInpainter",
    "sd2": "stages.inpaint_sd2:Sd2Inpainter",
}


def _load(table: dict[str, str], kind: str, name: str):
    if name not in table:
        raise ConfigError(f"unknown {kind}.backend {name!r}; choose one of {sorted(table)}")
    module, cls = table[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{kind}.backend {name!r} is not available: {e}") from e


def saliency_backend(cfg):
    return _load(SALIENCY, "saliency", cfg.saliency.backend)(cfg.saliency)


def inpaint_backend(cfg):
    return _load(INPAINT, "inpaint", cfg.inpaint.backend)(cfg.inpaint, cfg.seed)
