"""Encode: arrays -> the tar members of docs/ARCHITECTURE.md, done in workers so the writer only moves bytes.

PNG is lossless, so the encoder only trades CPU for bytes: fpng writes the RGB layers (~1 ms instead of
~25 ms for zlib level 3 at 512x512, ~15% larger files); the masks are flat, so OpenCV's zlib with the Up
filter and run-length strategy is both small and quick. Decoded pixels are the same whatever the encoder.
"""
from __future__ import annotations

import json

import cv2
import fpng
import numpy as np

from l2i_pipeline.core.sample import Sample
from l2i_pipeline.formats import mask8
from l2i_pipeline.formats.decode import Layer
from l2i_pipeline.formats.names import ALPHA, BG, FG, FG_RGBA, INPAINT_MASK, JPG, JSON, MASK, TXT, member
from stages.base import PerSampleStage

GRAY_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]


def png(array: np.ndarray) -> bytes:
    """RGB uint8 HxWx3, RGBA uint8 HxWx4 or gray uint8 HxW -> PNG bytes."""
    if array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8:
        return fpng.from_ndarray(np.ascontiguousarray(array))
    if array.ndim == 3:
        img = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    else:
        img = array
    ok, buf = cv2.imencode(".png", img, GRAY_PNG)
    if not ok:
        raise ValueError("png encoding failed")
    return buf.tobytes()


def encode_members(s: Sample) -> None:
    s.members = {
        JPG: s.members[JPG],  # the exact bytes I was round-tripped through in decode
        **_layer_members(1, s.fg, s.mask, s.inpaint_mask, s.bg),
        **_alpha_members(1, s.alpha, s.fg_rgba),
        TXT: s.caption.encode("utf-8"),
        JSON: json.dumps({"key": s.key, **s.meta}, default=str, sort_keys=True).encode(),
    }
    for k, layer in enumerate(s.peels, start=2):
        s.members.update(_peel_members(k, layer))
    s.image = s.mask = s.inpaint_mask = s.fg = s.bg = None  # only bytes travel to the writer
    s.alpha = s.fg_rgba = None
    s.peels = []


def _layer_members(k: int, fg: np.ndarray, mask: np.ndarray, inpaint_mask: np.ndarray, bg: np.ndarray
                   ) -> dict[str, bytes]:
    """Layer k's F, m (8-bit), m~ and B (formats/names.py; `l{k}.`-prefixed for k >= 2)."""
    return {member(k, FG): png(fg), member(k, MASK): png(mask8.encode(mask)),
            member(k, INPAINT_MASK): png(inpaint_mask), member(k, BG): png(bg)}


def _alpha_members(k: int, alpha: np.ndarray | None, fg_rgba: np.ndarray | None) -> dict[str, bytes]:
    """layers.alpha=matting: layer k's alpha (8-bit) and F' with alpha; none without matting, so the
    paper's members stay byte-identical."""
    if alpha is None:
        return {}
    return {member(k, ALPHA): png(mask8.encode(alpha)), member(k, FG_RGBA): png(fg_rgba)}


def _peel_members(k: int, layer: Layer) -> dict[str, bytes]:
    """Layer k >= 2 of layers.count > 1 (stages/peel.py): the paper's four members prefixed `l{k}.`."""
    members = _layer_members(k, layer.fg, layer.mask, layer.inpaint_mask, layer.bg)
    if layer.alpha is not None:  # layers.alpha=matting: the matting helper's encoder (issue 26 contract)
        members.update(_alpha_members(k, layer.alpha, layer.fg_rgba))
    return members


class EncodeStage(PerSampleStage):
    name = "encode"

    def apply(self, sample: Sample) -> None:
        encode_members(sample)
