"""The 8-bit masks of a shard: m and the soft alpha as round(255 * m), m~ as 0/255.

A float mask in [0, 1] is stored as `encode(m)`; a reader gets `decode(encode(m))` back, float32. The
saliency stage quantises its masks to those levels before any later stage sees them (`quantize`), so what a
reader decodes is what the pipeline computed with.
"""
from __future__ import annotations

import numpy as np

CUT = 0.1  # layers.threshold's default: F = I where m > CUT (the paper's cut; an old json without it)
ON = 255  # a binary mask's (m~, the cut's alpha) value where it is set


def encode(mask: np.ndarray) -> np.ndarray:
    """float HxW in [0, 1] -> uint8 round(255 * m) (halves to even), clipped to 0..255."""
    return np.clip(np.rint(mask * 255), 0, 255).astype(np.uint8)


def decode(mask8: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]."""
    return mask8.astype(np.float32) / 255.0


def quantize(mask: np.ndarray) -> np.ndarray:
    """A float mask at the levels its 8-bit encoding can hold: decode(encode(m)), float32."""
    return decode(encode(mask))


def binary(where: np.ndarray) -> np.ndarray:
    """A boolean mask as uint8 0/ON (m~, the cut's alpha)."""
    return where.astype(np.uint8) * ON
