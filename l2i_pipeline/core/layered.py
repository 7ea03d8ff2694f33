"""Layers of an L2I sample at any depth (issue 26): the record the peel stage fills and every reader gets.

Layer 1 is the paper's: members `fg.png`, `mask.png`, `inpaint_mask.png`, `bg.png` (and, with
`layers.alpha=matting`, `alpha.png`, `fg_rgba.png`). Layer k >= 2 (`layers.count` > 1) has the same
members prefixed `l{k}.`; the json's `depth` says how many layers the sample kept (absent: 1, a shard made
before peeling or with `layers.count=1`) and `peel` holds one measures dict per layer k >= 2. Per layer,
`I_k = m_k F_k + (1 - m_k) B_k` with I_1 = I (the jpg) and I_k = B_{k-1} (docs/ARCHITECTURE.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

MEMBERS = ("fg.png", "mask.png", "inpaint_mask.png", "bg.png")  # every layer has these
ALPHA_MEMBERS = ("alpha.png", "fg_rgba.png")  # layers.alpha=matting only


@dataclass
class Layer:
    """One layer: F (uint8 RGB), m (float32 HxW in [0, 1]), m~ (uint8 0/255), B (uint8 RGB), and with
    matting alpha (float32 HxW) and F' with alpha (uint8 RGBA). `meta`: the layer's json measures."""

    mask: np.ndarray | None = None
    fg: np.ndarray | None = None
    inpaint_mask: np.ndarray | None = None
    bg: np.ndarray | None = None
    alpha: np.ndarray | None = None
    fg_rgba: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Peeled: F, m~ and B are all there (a layer queued from an earlier saliency pass has its mask only)."""
        return self.fg is not None and self.inpaint_mask is not None and self.bg is not None


def prefix(k: int) -> str:
    """Member-name prefix of layer k (1-based): '' for the paper's layer, 'l{k}.' after it."""
    return "" if k == 1 else f"l{k}."


def depth_of(members: dict[str, bytes]) -> int:
    """Layers a sample holds: the json's `depth`, else 1 (old shards, `layers.count=1`)."""
    try:
        meta = json.loads(members.get("json") or b"{}")
    except ValueError:
        meta = {}
    depth = meta.get("depth", 1) if isinstance(meta, dict) else 1
    return depth if isinstance(depth, int) and depth >= 1 else 1


def _decode(data: bytes, flags: int, name: str) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if arr is None:
        raise ValueError(f"{name} does not decode")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return arr


def read_layers(members: dict[str, bytes]) -> list[Layer]:
    """Every layer of one sample's tar members, front (layer 1) to back; B of the last is the deepest
    background. Raises KeyError for a missing member and ValueError for one that does not decode."""
    try:
        peel = json.loads(members.get("json") or b"{}").get("peel") or []
    except (ValueError, AttributeError):
        peel = []
    layers = []
    for k in range(1, depth_of(members) + 1):
        p = prefix(k)
        for name in MEMBERS:
            if p + name not in members:
                raise KeyError(f"member {p + name} missing (the json says depth {depth_of(members)})")
        meta = next((e for e in peel if isinstance(e, dict) and e.get("layer") == k), {})

        def get(name: str, flags: int, p: str = p) -> np.ndarray:
            return _decode(members[p + name], flags, p + name)

        layer = Layer(mask=get("mask.png", cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0,
                      fg=get("fg.png", cv2.IMREAD_COLOR), inpaint_mask=get("inpaint_mask.png", cv2.IMREAD_GRAYSCALE),
                      bg=get("bg.png", cv2.IMREAD_COLOR), meta=meta)
        if p + "alpha.png" in members:
            layer.alpha = get("alpha.png", cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
        if p + "fg_rgba.png" in members:
            layer.fg_rgba = get("fg_rgba.png", cv2.IMREAD_UNCHANGED)
        layers.append(layer)
    return layers


def composite(layers: list[Layer]) -> np.ndarray:
    """Every layer over the deepest background, back to front, with m as the alpha (alpha when matting):
    reproduces I outside the inpainted rings. uint8 RGB."""
    out = layers[-1].bg.astype(np.float32)
    for layer in reversed(layers):
        a = (layer.alpha if layer.alpha is not None else layer.mask)[..., None]
        f = layer.fg_rgba[..., :3] if layer.fg_rgba is not None else layer.fg
        out = a * f.astype(np.float32) + (1 - a) * out
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
