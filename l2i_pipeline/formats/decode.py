"""A sample's members -> arrays: every layer at any depth, the record the peel stage fills and readers get.

Layer 1 is the paper's (`names.LAYER_MEMBERS`, and with `layers.alpha=matting` `names.ALPHA_MEMBERS`).
Layer k >= 2 (`layers.count` > 1) has the same members prefixed `l{k}.`; the json's `depth` says how many
layers the sample kept (absent: 1, a shard made before peeling or with `layers.count=1`) and `peel` holds
one measures dict per layer k >= 2. Per layer, `I_k = m_k F_k + (1 - m_k) B_k` with I_1 = I (the jpg) and
I_k = B_{k-1} (docs/ARCHITECTURE.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from l2i_pipeline.formats import mask8
from l2i_pipeline.formats.names import ALPHA, BG, FG, FG_RGBA, INPAINT_MASK, JSON, LAYER_MEMBERS, MASK, member

COLOR, GRAY, UNCHANGED = cv2.IMREAD_COLOR, cv2.IMREAD_GRAYSCALE, cv2.IMREAD_UNCHANGED  # decode_image's modes


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


def decode_image(data: bytes, mode: int = COLOR, name: str = "image member", rgb: bool = True) -> np.ndarray:
    """PNG or JPEG bytes -> uint8 array: COLOR (RGB HxWx3, an alpha channel dropped), GRAY HxW, or UNCHANGED (RGBA
    HxWx4 stays RGBA). `rgb=False` keeps OpenCV's BGR order. ValueError naming `name` when it does not decode."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), mode)
    if arr is None:
        raise ValueError(f"{name} does not decode")
    if arr.ndim == 3 and rgb:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return arr


def decode_mask(data: bytes, name: str = MASK) -> np.ndarray:
    """An 8-bit mask member (m, alpha) -> float32 HxW in [0, 1]."""
    return mask8.decode(decode_image(data, GRAY, name))


def sample_json(members: dict[str, bytes]) -> dict[str, Any]:
    """The sample's json member as a dict ({} when it is missing or not a json object)."""
    try:
        meta = json.loads(members.get(JSON) or b"{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def depth_of(members: dict[str, bytes]) -> int:
    """Layers a sample holds: the json's `depth`, else 1 (old shards, `layers.count=1`)."""
    depth = sample_json(members).get("depth", 1)
    return depth if isinstance(depth, int) and depth >= 1 else 1


def read_layers(members: dict[str, bytes]) -> list[Layer]:
    """Every layer of one sample's tar members, front (layer 1) to back; B of the last is the deepest
    background. Raises KeyError for a missing member and ValueError for one that does not decode."""
    peel = sample_json(members).get("peel") or []
    layers = []
    for k in range(1, depth_of(members) + 1):
        for name in LAYER_MEMBERS:
            if member(k, name) not in members:
                raise KeyError(f"member {member(k, name)} missing (the json says depth {depth_of(members)})")
        meta = next((e for e in peel if isinstance(e, dict) and e.get("layer") == k), {})

        def get(name: str, mode: int, k: int = k) -> np.ndarray:
            return decode_image(members[member(k, name)], mode, member(k, name))

        layer = Layer(mask=decode_mask(members[member(k, MASK)], member(k, MASK)), fg=get(FG, COLOR),
                      inpaint_mask=get(INPAINT_MASK, GRAY), bg=get(BG, COLOR), meta=meta)
        if member(k, ALPHA) in members:
            layer.alpha = decode_mask(members[member(k, ALPHA)], member(k, ALPHA))
        if member(k, FG_RGBA) in members:
            layer.fg_rgba = get(FG_RGBA, UNCHANGED)
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
