"""The no-object gate: one rule, for every saliency backend, at every resolution.

A backend's mask is kept only when the image shows evidence of an object where the mask ends. The measures
are taken at a fixed short side (GATE_SIZE), whatever the working resolution, so an image upscaled to 512
px is judged as it is at 160. A network's raw confidence is one kind of evidence (nothing above
`layers.threshold`: no object); the image's own is the other, and no backend may skip it:
- edge contrast: the mask's inner and outer bands differ in colour along its contour (flat colours, smooth
  gradients and noise have none);
- distinctness: the region differs from its surroundings at texture scale, and is shaped like one object
  rather than a ragged patch of a uniform texture.
`bench/bench_saliency.py` measures the gate on generated no-object images and composed scenes.
"""
from __future__ import annotations

import cv2
import numpy as np

GATE_SIZE = 160  # short side (pixels) at which the evidence is measured
# Evidence a mask must have to be kept, at GATE_SIZE (bench/bench_saliency.py: generated no-object images,
# composed and object scenes, scikit-image's photos at 160-512 px, classical and U²-Netp masks):
# - edge contrast (Lab units): flat colours, gradients and noise < 7; objects >= 14
# - distinctness (sigma 8): uniform textures 0.02-0.82 unless ragged or faint; photos >= 0.84, scenes >= 1.77;
#   weakly distinct (< 1) needs a clear edge (>= 35): textures have 18-32, the astronaut at 256 px 39.7
# - ragged (solidity < 0.25), not clearly distinct (< 2) and without a strong edge (< 50): textures cut into
#   bits by GrabCut (solidity 0.10-0.22, distinctness <= 1.57); a thin rocket at 160 px is ragged but distinct
# - faint: a network's mean confidence over its mask < 0.6 on a region not clearly distinct (< 1.5): the
#   bricks U²-Netp half-sees (0.46-0.59, distinctness 1.2); faint real objects are distinct (rocket: 2.3-8.9)
#   or surer (the washed-out RGBA astronaut at 96 px: 0.62, distinctness 1.29) — the tightest margin here
MIN_EDGE_CONTRAST = 10.0
MIN_DISTINCTNESS = 0.7
WEAK_DISTINCTNESS, MIN_WEAK_EDGE = 1.0, 35.0
RAGGED_SOLIDITY, MIN_RAGGED_DISTINCTNESS, MIN_RAGGED_EDGE = 0.25, 2.0, 50.0
FAINT_CONFIDENCE, MIN_FAINT_DISTINCTNESS = 0.6, 1.5


def edge_contrast(lab: np.ndarray, binary: np.ndarray, band: int = 7, window: int = 15) -> float:
    """Median Lab distance between the mask's inner and outer bands, measured locally along its contour.

    An object has an edge where the mask ends; a mask drawn on a flat colour, a smooth gradient or noise
    does not (noise averages out over the band windows)."""
    lab = cv2.GaussianBlur(lab, (0, 0), 1.5)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (band, band))
    means, counts = [], []
    for part in (binary - cv2.erode(binary, k), cv2.dilate(binary, k) - binary):
        part = part.astype(np.float32)
        n = cv2.boxFilter(part, -1, (window, window), normalize=False)
        means.append(cv2.boxFilter(lab * part[..., None], -1, (window, window), normalize=False)
                     / np.maximum(n, 1e-6)[..., None])
        counts.append(n)
    contour = cv2.morphologyEx(binary, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    valid = contour & (counts[0] > 2) & (counts[1] > 2)
    return float(np.median(np.linalg.norm(means[0] - means[1], axis=2)[valid])) if valid.any() else 0.0


def region_distinctness(lab: np.ndarray, binary: np.ndarray, sigma: int = 8) -> tuple[float, float]:
    """(distinctness, solidity) of the masked region: does it differ from its surroundings at texture scale,
    and is it shaped like one object?

    Distinctness: local colour mean and spread (a Gaussian window of `sigma`) inside the mask against
    outside it, in units of the outside's own variation (max over the 6 channels). Solidity: area over
    convex-hull area. A patch of a uniform texture resembles the rest, and GrabCut cuts it into ragged bits."""
    mean = cv2.GaussianBlur(lab, (0, 0), sigma)
    spread = np.sqrt(np.maximum(cv2.GaussianBlur(lab * lab, (0, 0), sigma) - mean * mean, 0))
    desc = np.concatenate([mean, spread], 2)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * sigma + 1, 2 * sigma + 1))
    inside = cv2.erode(binary, k) > 0
    if inside.sum() < 10:
        inside = binary > 0
    outside = cv2.dilate(binary, k) == 0
    if not outside.any():
        return 0.0, 1.0
    d_in, d_out = desc[inside], desc[outside]
    z = float((np.abs(d_in.mean(0) - d_out.mean(0)) / (d_out.std(0) + 1.0)).max())
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.contourArea(cv2.convexHull(np.concatenate(contours)))
    return z, min(1.0, float(binary.sum()) / max(hull, 1.0))


def has_evidence(rgb: np.ndarray, binary: np.ndarray, confidence: float = 1.0) -> bool:
    """False for a mask that no image evidence supports (thresholds: see MIN_EDGE_CONTRAST); `confidence`: the
    backend's mean value over the mask (1 for a backend that gives a hard mask)."""
    if not binary.any():
        return False
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    edge = edge_contrast(lab, binary)
    if edge < MIN_EDGE_CONTRAST:  # flat colour, smooth gradient, noise
        return False
    z, solidity = region_distinctness(lab, binary)
    ragged = solidity < RAGGED_SOLIDITY and z < MIN_RAGGED_DISTINCTNESS and edge < MIN_RAGGED_EDGE
    faint = confidence < FAINT_CONFIDENCE and z < MIN_FAINT_DISTINCTNESS
    weak = z < WEAK_DISTINCTNESS and edge < MIN_WEAK_EDGE
    return z >= MIN_DISTINCTNESS and not (ragged or faint or weak)  # else: a patch of uniform texture


def at_gate_size(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image and the soft mask resized so that the short side is GATE_SIZE."""
    h, w = rgb.shape[:2]
    scale = GATE_SIZE / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, size, interpolation=interp), cv2.resize(mask.astype(np.float32), size, interpolation=interp)


def shows_object(rgb: np.ndarray, mask: np.ndarray, threshold: float) -> bool:
    """True when the mask (soft, in [0, 1], at the image's size) marks an object the image supports."""
    if not (mask > threshold).any():
        return False
    small, m = at_gate_size(rgb, mask)
    binary = m > threshold
    if not binary.any():
        return False
    return has_evidence(small, binary.astype(np.uint8), float(m[binary].mean()))
