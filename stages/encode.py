"""Encode: arrays -> the tar members of ARCHITECTURE.md, done in workers so the writer only moves bytes."""
from __future__ import annotations

import json

import cv2
import numpy as np

from l2i_pipeline.core.sample import Sample
from stages.base import PerSampleStage


def png(array: np.ndarray) -> bytes:
    img = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError("png encoding failed")
    return buf.tobytes()


def encode_members(s: Sample) -> None:
    mask8 = np.round(s.mask * 255).astype(np.uint8)
    s.members = {
        "jpg": s.members["jpg"],  # the exact bytes I was round-tripped through in decode
        "fg.png": png(s.fg),
        "mask.png": png(mask8),
        "inpaint_mask.png": png(s.inpaint_mask),
        "bg.png": png(s.bg),
        "txt": s.caption.encode("utf-8"),
        "json": json.dumps({"key": s.key, **s.meta}, default=str, sort_keys=True).encode(),
    }
    s.image = s.mask = s.inpaint_mask = s.fg = s.bg = None  # only bytes travel to the writer


class EncodeStage(PerSampleStage):
    name = "encode"

    def apply(self, sample: Sample) -> None:
        encode_members(sample)
