"""Classical salient-object masks on CPU, no weights: geodesic + frequency-tuned saliency, refined by GrabCut.

Geodesic saliency (Wei et al., ECCV 2012) scores each SLIC superpixel by its colour-path distance to the
image border: background regions connect to the border cheaply, objects do not. Frequency-tuned saliency
(Achanta et al., CVPR 2009) adds colour contrast with a centre prior. GrabCut then turns the confident
seeds into an object-shaped segmentation. Weight-free and fast; `u2netp` is the offline default and `icon`
the paper's model. Whether a mask shows an object at all is the stage's no-object gate (saliency_gate.py).
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from skimage.segmentation import slic

from l2i_pipeline.core.config import SaliencyConfig

WORK = 160  # GrabCut runs at this short side; the mask is upsampled and softened afterwards


def frequency_tuned(rgb: np.ndarray) -> np.ndarray:
    """Saliency in [0, 1]: Lab distance of the blurred image to its mean, times a soft centre prior."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    blurred = cv2.GaussianBlur(lab, (5, 5), 0)
    # the mean of the border is a better background estimate than the global mean for centred objects
    border = np.concatenate([lab[:4].reshape(-1, 3), lab[-4:].reshape(-1, 3),
                             lab[:, :4].reshape(-1, 3), lab[:, -4:].reshape(-1, 3)])
    ref = 0.5 * lab.reshape(-1, 3).mean(0) + 0.5 * np.median(border, axis=0)
    sal = np.linalg.norm(blurred - ref, axis=2)
    h, w = sal.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    prior = np.exp(-(((xx - w / 2) / (0.45 * w)) ** 2 + ((yy - h / 2) / (0.45 * h)) ** 2))
    sal = sal * (0.4 + 0.6 * prior)
    lo, hi = np.percentile(sal, 2), np.percentile(sal, 99.5)
    return np.clip((sal - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def geodesic(rgb: np.ndarray, n_segments: int = 250) -> np.ndarray:
    """Per-pixel geodesic distance (Lab, over superpixels) to the image border, scaled to [0, 1]."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    seg = slic(rgb, n_segments=n_segments, compactness=12, start_label=0, channel_axis=2)
    n = int(seg.max()) + 1
    count = np.maximum(np.bincount(seg.ravel(), minlength=n), 1).astype(np.float32)
    mean = np.stack([np.bincount(seg.ravel(), lab[..., c].ravel(), minlength=n) for c in range(3)], 1)
    mean /= count[:, None]
    a = np.concatenate([seg[:, :-1].ravel(), seg[:-1].ravel()])  # horizontally and vertically adjacent
    b = np.concatenate([seg[:, 1:].ravel(), seg[1:].ravel()])
    edge = a != b
    a, b = a[edge], b[edge]
    weight = np.maximum(np.linalg.norm(mean[a] - mean[b], axis=1) - 4.0, 0) + 1e-3  # ignore tiny steps
    graph = coo_matrix((weight, (a, b)), shape=(n, n)).tocsr()
    graph = graph.maximum(graph.T)
    border = np.unique(np.concatenate([seg[0], seg[-1], seg[:, 0], seg[:, -1]]))
    dist = dijkstra(graph, directed=False, indices=border, min_only=True)[seg]
    lo, hi = np.percentile(dist, 2), np.percentile(dist, 99)
    return np.clip((dist - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def grabcut_mask(rgb: np.ndarray, sal: np.ndarray, seed: int = 0, iterations: int = 4) -> np.ndarray:
    """Binary object mask (uint8 0/1) from GrabCut seeded by saliency quantiles and a background border."""
    thr, _ = cv2.threshold((sal * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    t = thr / 255.0
    gc = np.full(sal.shape, cv2.GC_PR_BGD, np.uint8)
    gc[sal > t] = cv2.GC_PR_FGD
    gc[sal > min(0.95, t + 0.5 * (1 - t))] = cv2.GC_FGD
    gc[sal < 0.5 * t] = cv2.GC_BGD
    b = max(2, sal.shape[0] // 40)
    gc[:b], gc[-b:], gc[:, :b], gc[:, -b:] = cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD
    if not (gc == cv2.GC_FGD).any() and not (gc == cv2.GC_PR_FGD).any():
        return np.zeros(sal.shape, np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    # GrabCut's k-means draws from OpenCV's per-thread global RNG: seed it from this sample alone, so the mask
    # does not depend on which images the process segmented before (a resumed run writes the same bytes)
    cv2.setRNGSeed(seed % 2**31)
    try:
        cv2.grabCut(bgr, gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # degenerate colour model (e.g. flat image): fall back to the seeds
        pass
    return ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)


def _keep_main_components(binary: np.ndarray, min_frac: float = 0.1) -> np.ndarray:
    """Drop specks: keep components at least `min_frac` the size of the largest."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 2:
        return binary
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= min_frac * areas.max()) + 1
    return np.isin(labels, keep).astype(np.uint8)


def classical_mask(rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    """Soft mask m in [0, 1] at the image's size; `seed` (from the run seed and the key) drives GrabCut."""
    h, w = rgb.shape[:2]
    scale = WORK / min(h, w)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    sal = np.clip(0.65 * geodesic(small) + 0.35 * frequency_tuned(small), 0, 1)
    binary = _keep_main_components(grabcut_mask(small, sal, seed))
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    soft = cv2.resize(binary.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    k = max(3, (min(h, w) // 100) | 1)
    return np.clip(cv2.GaussianBlur(soft, (k, k), 0), 0, 1).astype(np.float32)


class ClassicalSaliency:
    uses_gpu = False

    def __init__(self, cfg: SaliencyConfig):
        self.cfg = cfg

    def check(self) -> None:
        """Nothing to load."""

    def setup(self) -> None:
        cv2.setNumThreads(1)  # parallelism comes from Ray, not from OpenCV threads fighting over cores

    def predict(self, images: list[np.ndarray], seeds: list[int] | None = None) -> list[np.ndarray]:
        return [classical_mask(im, seed) for im, seed in zip(images, seeds or [0] * len(images))]

    def describe(self) -> dict:
        return {"backend": "classical", "method": "geodesic+frequency-tuned+grabcut", "work_size": WORK}
