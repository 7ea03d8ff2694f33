"""Soft alpha and clean foreground colours (issue 26, `layers.alpha=matting`; docs/ARCHITECTURE.md).

The paper's cut is binary: F = I where m > t, so every soft edge (hair, blur, anti-aliasing) keeps the old
background's colour. Here a trimap is built from that cut and the saliency map's soft values (`soft_trimap`:
unknown = the pixels within `layers.band` px of the cut's edge, the band shrunk for small objects, where the
saliency is neither ~0 nor ~1, plus a thin core band along the edge itself; everything else keeps the cut),
alpha is solved in the unknown pixels with pymatting's closed-form matting (Levin et al.), and the foreground
colour F' with pymatting's multilevel estimator (Germer et al.), so that I = alpha F' + (1 - alpha) B' holds there.

Cost: the closed-form solve and the foreground estimate run on the bounding box of the unknown pixels only, at
`layers.matting_scale` of the resolution (default 0.5: a quarter of the pixels), then alpha and F' are
resized back and used in the unknown pixels only; elsewhere alpha is the cut's 0/1 and F' is I. Figures and
the variants tried (fixed band, KNN, large-kernel, learning-based, shared, random-walk; scales):
bench/bench_matting.py, README "Soft alpha".

Pure functions of the arrays: no sample, no I/O, so the peeling stage calls `soft_alpha` per layer.
"""
from __future__ import annotations

import cv2
import numpy as np

from l2i_pipeline.core.config import LayersConfig
from l2i_pipeline.formats import mask8

UNKNOWN = 0.5
SURE = (0.01, 0.99)  # soft_trimap: saliency at or below / at or above these is sure background / foreground


class MattingError(RuntimeError):
    """The solver failed on this image (e.g. no convergence); the caller records it as a rejection."""


def trimap(mask: np.ndarray, threshold: float, band: int) -> np.ndarray:
    """float64 HxW: 1 sure foreground, 0 sure background, 0.5 the unknown band of half-width `band` pixels
    around the edge of the cut m > threshold."""
    binary = (mask > threshold).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    sure_fg = cv2.erode(binary, k, borderType=cv2.BORDER_REPLICATE) > 0
    near = cv2.dilate(binary, k, borderType=cv2.BORDER_REPLICATE) > 0
    tri = np.zeros(mask.shape, np.float64)
    tri[near] = UNKNOWN
    tri[sure_fg] = 1.0
    return tri


def soft_trimap(mask: np.ndarray, threshold: float, band: int) -> np.ndarray:
    """The trimap soft_alpha solves. Unknown only inside trimap(mask, threshold, b)'s band, b = `band` shrunk
    to a quarter of the cut's equivalent radius for small objects (so they keep a sure core), and there only
    where the saliency is soft (SURE[0] < m < SURE[1]) or within a core band of the cut's edge. The core is
    wide where the map's soft edge is narrow: b - 2 h px, h the mean half-width of the soft edge (soft pixels
    per edge pixel / 2), clipped to [2, b / 2], since a map whose edge is sharper than the object's says
    nothing about where the object's soft edge ends. Elsewhere: the cut, 0 or 1."""
    cut = mask > threshold
    radius = np.sqrt(cut.sum() / np.pi)
    b = int(np.clip(round(radius / 4), 1, band))
    outer = trimap(mask, threshold, b) == UNKNOWN
    soft = outer & (mask > SURE[0]) & (mask < SURE[1])
    edge = cv2.morphologyEx(cut.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    half = soft.sum() / max(edge.sum() / 2, 1) / 2
    core = int(np.clip(round(b - 2 * half), 2, max(2, b // 2)))
    tri = cut.astype(np.float64)
    tri[soft | (outer & (trimap(mask, threshold, core) == UNKNOWN))] = UNKNOWN
    return tri


def _band_box(unknown: np.ndarray, margin: int) -> tuple[slice, slice]:
    ys = np.flatnonzero(unknown.any(axis=1))
    xs = np.flatnonzero(unknown.any(axis=0))
    h, w = unknown.shape
    return (slice(max(ys[0] - margin, 0), min(ys[-1] + margin + 1, h)),
            slice(max(xs[0] - margin, 0), min(xs[-1] + margin + 1, w)))


METHODS = ("cf", "knn", "lkm", "lbdm", "sm", "rw")  # pymatting's estimate_alpha_*; cf is used, the rest are
# for bench/bench_matting.py's comparison


def _solve(image: np.ndarray, tri: np.ndarray, scale: float, method: str = "cf") -> tuple[np.ndarray, np.ndarray]:
    """Alpha (HxW) and F' (HxWx3), float in [0, 1], for one crop: solved at `scale`, resized back, and F'
    corrected at full resolution so that I = alpha F' + (1 - alpha) B' holds again (the least change to F'
    and B' that removes the residual), which also gives F' = I where alpha = 1."""
    import numba
    import pymatting  # numba: import only when used

    numba.set_num_threads(1)  # this thread only: workers parallelise over samples, and idle numba threads
    # spinning on a busy node cost more CPU than they save (bench/bench_matting.py)
    h, w = tri.shape
    full = image.astype(np.float32) / 255.0
    img, small_tri = full.astype(np.float64), tri
    if scale < 1.0:
        size = (max(2, round(w * scale)), max(2, round(h * scale)))
        img = np.clip(cv2.resize(img, size, interpolation=cv2.INTER_AREA), 0, 1)
        small_tri = cv2.resize(tri, size, interpolation=cv2.INTER_NEAREST)
    if not (small_tri == UNKNOWN).any():  # the band vanished at this scale: nothing to solve
        return np.where(tri == UNKNOWN, 0.0, tri), full
    try:
        solver = getattr(pymatting, f"estimate_alpha_{method}")
        alpha = solver(img, small_tri, **({"cg_kwargs": {"maxiter": 2000}} if method == "cf" else {}))
        fg, bg = pymatting.estimate_foreground_ml(img.astype(np.float32), alpha.astype(np.float32),
                                                  return_background=True)
    except (ValueError, ArithmeticError) as e:  # cg: "did not converge"; a singular system
        raise MattingError(str(e)[:200]) from e
    if not (np.isfinite(alpha).all() and np.isfinite(fg).all() and np.isfinite(bg).all()):
        raise MattingError("non-finite alpha or foreground")
    if scale < 1.0:
        alpha, fg, bg = (cv2.resize(x.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
                         for x in (alpha, fg, bg))
    alpha = np.clip(alpha, 0, 1).astype(np.float32)
    a = alpha[..., None]
    residual = full - a * fg - (1 - a) * bg
    fg = fg + a * residual / np.maximum(a * a + (1 - a) ** 2, 1e-6)
    return alpha, np.clip(fg, 0, 1)


def soft_alpha(image: np.ndarray, mask: np.ndarray, cfg: LayersConfig, *, fixed_band: bool = False,
               method: str = "cf") -> tuple[np.ndarray, np.ndarray]:
    """(alpha float32 HxW in [0, 1], quantised to 8 bits; fg_rgba uint8 HxWx4: F' where alpha > 0 with alpha).

    image: uint8 RGB HxWx3 (I, or B_{k-1} when peeling); mask: float32 HxW saliency in [0, 1].
    fixed_band (the first version: every pixel of trimap()'s band unknown) and method (one of METHODS) are
    the benchmark's variants; the pipeline uses the defaults. Raises MattingError when the solver fails.
    """
    tri = (trimap if fixed_band else soft_trimap)(mask, cfg.threshold, cfg.band)
    unknown = tri == UNKNOWN
    alpha = tri.astype(np.float32)
    colour = image.copy()
    if unknown.any():
        box = _band_box(unknown, margin=2 + int(np.ceil(1 / cfg.matting_scale)))
        a, f = _solve(image[box], tri[box], cfg.matting_scale, method)
        band = unknown[box]
        alpha[box][band] = a[band]
        colour[box][band] = np.rint(f[band] * 255).astype(np.uint8)
    alpha8 = mask8.encode(alpha)
    colour[alpha8 == 0] = 0
    return mask8.decode(alpha8), np.dstack([colour, alpha8])
