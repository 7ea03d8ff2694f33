"""Mask IOU (section V-B): m̂ binarised at 0.5 against a reference mask, mean per image.

References: the project's own saliency stage run on the composite (ICON as in the paper when its weights
are given, else the classical CPU backend, labelled as such so the numbers are never mistaken for the
paper's), and human masks (`<id>.png` in a dir). Two empty masks agree perfectly: IOU 1.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from l2i_pipeline.core.config import Config
from l2i_pipeline.core.errors import NotFound
from l2i_pipeline.core.storage import Store, as_store
from l2i_pipeline.formats.names import MASK
from stages.registry import saliency_backend
from training.eval.sources import Item, decode_rgb
from training.sampling.markers import read_checked

THRESHOLD = 0.5


def binarize(mask: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """True where the mask exceeds `threshold` of its full scale (uint8 masks are 0..255, floats 0..1)."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    scale = 255.0 if m.dtype == np.uint8 else 1.0
    return m.astype(np.float32) > threshold * scale


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if pred.shape != ref.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {ref.shape}")
    union = np.logical_or(pred, ref).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, ref).sum() / union)


def read_mask(src: str | Path | bytes, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A grayscale mask (a file or its bytes) as uint8, resized (bilinear, before binarising) to `shape` (H, W)
    when it differs."""
    with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
        m = np.asarray(im.convert("L"))
    if shape is not None and m.shape != shape:
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return m


class SaliencyIou:
    """IOU of each sample's m̂ against the saliency of its composite: `__call__(items) -> (n, 1)`."""

    def __init__(self, sample_root: str | os.PathLike | Store, icon_weights: str | None, icon_variant: str = "ICON-R",
                 device: str = "auto", batch_size: int = 8):
        cfg = Config()
        s = cfg.saliency
        s.device, s.batch_size = device, batch_size
        if icon_weights:
            s.backend, s.weights, s.variant = "icon", str(icon_weights), icon_variant
            self.label = icon_variant
        else:
            s.backend = "classical"
            self.label = "classical saliency (not ICON)"
        self.backend = saliency_backend(cfg)
        self.backend.check()
        self.root = as_store(sample_root)  # pickled to Ray actors with its storage options
        self.key = f"{s.backend}-{icon_variant}" if icon_weights else "classical"

    def describe(self) -> dict:
        return self.backend.describe()

    def __call__(self, items: list[Item]) -> np.ndarray:
        composites = [decode_rgb(d) for _, d, _ in items]
        refs = self.backend.predict(composites)
        out = []
        for (sid, _, _), ref in zip(items, refs):
            try:
                mask = read_checked(self.root, sid, MASK)
            except NotFound:  # no m̂ to score: left out of the mean, not counted as 0
                out.append(np.nan)
                continue
            out.append(iou(binarize(read_mask(mask, ref.shape[:2])), binarize(ref)))
        return np.asarray(out, dtype=np.float64)[:, None]


def human_iou(sample_root: str | os.PathLike | Store, ids: list[str], human_dir: str | Path) -> dict[str, float]:
    """IOU against `<human_dir>/<id>.png` for every sample that has one (resized to m̂'s size)."""
    human, store = Path(human_dir), as_store(sample_root)
    out = {}
    for sid in ids:
        ref_path = human / f"{sid}.png"
        if ref_path.is_file() and store.exists(f"{sid}/{MASK}"):
            pred = read_mask(read_checked(store, sid, MASK))
            out[sid] = iou(binarize(pred), binarize(read_mask(ref_path, pred.shape)))
    return out

