"""Backends by config name. A new backend is one line here plus its module.

Saliency backend: `__init__(cfg: SaliencyConfig)`, `check()` (fail fast in the driver, e.g. a missing
weight file), `setup()` (load once per actor), `predict(list[RGB uint8 HxWx3], seeds) -> list[float32 HxW
in [0,1]]` (seeds: one per image, from the run seed and the key; every random draw must come from it),
`describe() -> dict` (recorded in each sample's json), attribute `uses_gpu`.

Inpaint backend: `__init__(cfg: InpaintConfig, seed: int)`, `check()`, `setup()`,
`inpaint(images, masks, keys) -> list[RGB uint8]` (masks: uint8 HxW, 255 = fill), `describe()`,
`uses_gpu`. The stage pastes the original back outside the mask, so backends need not.

Optional on both: `thread_safe = True` when the backend may be called from several threads at once
because it holds its own lock around the device section only; the runners then overlap one batch's CPU
pre/post work with another batch's device time. Without it, calls into the backend are serialised.

Besides these names, either backend may be given by import path, `package.module:Class`, so users bring
their own models; the class is checked against the protocol above before any work starts.
"""
from __future__ import annotations

import importlib

from l2i_pipeline.core.config import ConfigError

SALIENCY = {
    "classical": "stages.saliency_classical:ClassicalSaliency",
    "icon": "stages.saliency_icon:IconBackend",
    "u2netp": "stages.saliency_u2netp:U2NetpSaliency",
}
INPAINT = {
    "telea": "stages.inpaint_telea:TeleaInpainter",
    "sd2": "stages.inpaint_sd2:Sd2Inpainter",
}


PROTOCOL = {"saliency": ("check", "setup", "predict", "describe"),
            "inpaint": ("check", "setup", "inpaint", "describe")}


def _load(table: dict[str, str], kind: str, name: str):
    if name not in table and ":" not in name:
        raise ConfigError(f"unknown {kind}.backend {name!r}; choose one of {sorted(table)} "
                          "or give an import path package.module:Class")
    module, _, cls = table.get(name, name).partition(":")
    try:
        backend = getattr(importlib.import_module(module), cls)
    except Exception as e:  # noqa: BLE001 - a missing module, a typo, or an error while importing it
        raise ConfigError(f"{kind}.backend {name!r} is not available: {type(e).__name__}: {e}") from e
    missing = [m for m in PROTOCOL[kind] if not callable(getattr(backend, m, None))]
    missing += [] if isinstance(getattr(backend, "uses_gpu", None), bool) else ["uses_gpu (a bool)"]
    if not isinstance(backend, type) or missing:
        raise ConfigError(f"{kind}.backend {name!r} does not implement the {kind} backend protocol "
                          f"(see stages/registry.py): missing {', '.join(missing) or 'a class'}")
    return backend


def saliency_backend(cfg):
    return _load(SALIENCY, "saliency", cfg.saliency.backend)(cfg.saliency)


def inpaint_backend(cfg):
    return _load(INPAINT, "inpaint", cfg.inpaint.backend)(cfg.inpaint, cfg.seed)
