"""Backends by config name. A new backend is one line here plus its module.

What a backend must have is stages/protocols.py (`SaliencyBackend`, `InpaintBackend`). Besides these
names, either backend may be given by import path, `package.module:Class`, so users bring their own
models; the class is checked against its protocol before any work starts.
"""
from __future__ import annotations

import importlib

from l2i_pipeline.core.config import ConfigError
from stages.protocols import InpaintBackend, SaliencyBackend, missing_members

SALIENCY = {
    "classical": "stages.saliency_classical:ClassicalSaliency",
    "icon": "stages.saliency_icon:IconBackend",
    "u2netp": "stages.saliency_u2netp:U2NetpSaliency",
}
INPAINT = {
    "telea": "stages.inpaint_telea:TeleaInpainter",
    "sd2": "stages.inpaint_sd2:Sd2Inpainter",
}


PROTOCOL: dict[str, type] = {"saliency": SaliencyBackend, "inpaint": InpaintBackend}


def _load(table: dict[str, str], kind: str, name: str):
    if name not in table and ":" not in name:
        raise ConfigError(f"unknown {kind}.backend {name!r}; choose one of {sorted(table)} "
                          "or give an import path package.module:Class")
    module, _, cls = table.get(name, name).partition(":")
    try:
        backend = getattr(importlib.import_module(module), cls)
    except Exception as e:  # noqa: BLE001 - a missing module, a typo, or an error while importing it
        raise ConfigError(f"{kind}.backend {name!r} is not available: {type(e).__name__}: {e}") from e
    missing = missing_members(backend, PROTOCOL[kind])
    if not isinstance(backend, type) or missing:
        raise ConfigError(f"{kind}.backend {name!r} does not implement the {kind} backend protocol "
                          f"(stages/protocols.py): missing {', '.join(missing) or 'a class'}")
    return backend


def saliency_backend(cfg) -> SaliencyBackend:
    return _load(SALIENCY, "saliency", cfg.saliency.backend)(cfg.saliency)


def inpaint_backend(cfg) -> InpaintBackend:
    return _load(INPAINT, "inpaint", cfg.inpaint.backend)(cfg.inpaint, cfg.seed)
