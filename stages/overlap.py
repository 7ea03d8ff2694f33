"""Overlapping objects in one salient region (issue 26, `layers.split=occlusion`): split by colour, order by occlusion.

A saliency pass often marks two objects that overlap as one connected region, which `split_components`
cannot cut. Here a region is cut where its colours fall into two well-separated groups (a deterministic
2-means on the region's smoothed Lab colours, started from the split of the principal axis at the mean;
Fisher ratio along the axis between the centres at least FISHER) that make solid pieces: the 8-connected
pieces of each group after an opening, those covering at least `min_share` of the image and MIN_PART of
the region, together hold COHERENT of the region (three objects in a row: two colours, three pieces). The
cut is kept only when every piece has OUTLINE of its border on the region's outline (not a patch inside an
object, nor a ring of background around it) and some two pieces show occlusion (below). Each piece is cut
again the same way, up to `room` pieces. Every pixel of the region's mask (soft fringe included) goes to
the nearest piece, so the pieces add up to the mask exactly.

Order rule (front first): occlusion. A front object is whole, so its convex hull holds few pixels of the
object behind it; the object behind has a bite taken out of it, and its hull holds pixels of the one in
front. For every two pieces P, Q: P is in front of Q when hull(P) holds fewer pixels of Q than hull(Q)
holds of P (by more than TIE of the smaller piece); the pieces are taken in that order (topologically),
and where nothing decides (a straight-edged cut leaves both hulls clean), the one with more mass first.

A multicoloured single object (a red shirt over blue jeans) can split too: the colour cue cannot tell parts
of an object from objects, hence an opt-in setting; bench/bench_peel.py measures both kinds of scene.
FISHER was set from the Fisher ratios of bench_peel's photo scenes (seeds 0-15, the bench's among them):
single objects mostly 3-9, overlapping pairs mostly 8-76.
"""
from __future__ import annotations

import cv2
import numpy as np

FISHER = 8.0  # (mu1 - mu2)^2 / (var1 + var2) along the principal axis: below, one colour group
COHERENT = 0.8  # the pieces together hold at least this share of the region
MIN_PART = 0.15  # a piece covers at least this share of the region it is cut from
OUTLINE = 0.25  # a piece has at least this share of its border on the region's outline: see _on_outline
BITE = 0.05  # a cut is kept only where the pieces occlude: see _occluding
TIE = 0.05  # hull counts closer than this share of the smaller piece: no occlusion vote (then: more mass first)


def _two_means(x: np.ndarray, iterations: int = 10) -> tuple[np.ndarray, float]:
    """Labels (bool) of a deterministic 2-means on the rows of x, and the Fisher ratio of the two groups
    along the axis between their centres."""
    mean = x.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    label = (x - mean) @ vectors[:, -1] > 0  # the principal axis, split at the mean
    for _ in range(iterations):
        if label.all() or not label.any():
            return label, 0.0
        c1, c0 = x[label].mean(axis=0), x[~label].mean(axis=0)
        new = ((x - c1) ** 2).sum(axis=1) < ((x - c0) ** 2).sum(axis=1)
        if (new == label).all():
            break
        label = new
    if label.all() or not label.any():
        return label, 0.0
    axis = x[label].mean(axis=0) - x[~label].mean(axis=0)
    norm = float(np.linalg.norm(axis))
    if norm == 0:
        return label, 0.0
    p = x @ (axis / norm)
    return label, float((p[label].mean() - p[~label].mean()) ** 2 / (p[label].var() + p[~label].var() + 1e-6))


def _pieces(binary: np.ndarray, min_pixels: float) -> list[np.ndarray]:
    """The 8-connected pieces of `binary` of at least min_pixels, largest first."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    big = sorted((i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_pixels),
                 key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    return [labels == i for i in big]


def _cut(lab: np.ndarray, region: np.ndarray, min_pixels: float) -> list[np.ndarray]:
    """The region (bool) as solid pieces of two colour groups that occlude one another, or [region]."""
    label, fisher = _two_means(lab[region])
    if fisher < FISHER:
        return [region]
    group = np.zeros(region.shape, bool)
    group[region] = label
    k = np.ones((5, 5), np.uint8)
    size = max(min_pixels, MIN_PART * region.sum())
    pieces = [p for g in (group, region & ~group)
              for p in _pieces(cv2.morphologyEx(g.astype(np.uint8), cv2.MORPH_OPEN, k) > 0, size)]
    if (len(pieces) < 2 or sum(p.sum() for p in pieces) < COHERENT * region.sum()
            or not _on_outline(pieces, region) or not _occluding(pieces)):
        return [region]
    owner = _nearest(pieces, region.shape)
    return [region & (owner == i) for i in range(len(pieces))]


def _on_outline(pieces: list[np.ndarray], region: np.ndarray) -> bool:
    """Every piece has at least OUTLINE of its own border on the region's outline: a patch inside an object
    (eyes, a logo) or a ring around it (a halo of background) is not an object beside it."""
    k = np.ones((3, 3), np.uint8)
    outline = region & (cv2.dilate((~region).astype(np.uint8), k, borderType=cv2.BORDER_CONSTANT, borderValue=1) > 0)
    for p in pieces:
        border = p & (cv2.dilate((~p).astype(np.uint8), k, borderType=cv2.BORDER_CONSTANT, borderValue=1) > 0)
        if (border & outline).sum() < OUTLINE * border.sum():
            return False
    return True


def _occluding(pieces: list[np.ndarray]) -> bool:
    """Some two pieces are clearly one in front of the other: the back one's hull holds at least BITE of
    the smaller piece, and the front one's hull at most half as much of the back one."""
    hulls = [_hull(p) for p in pieces]
    for i in range(len(pieces)):
        for j in range(i + 1, len(pieces)):
            a, b = int((hulls[i] & pieces[j]).sum()), int((hulls[j] & pieces[i]).sum())
            if max(a, b) >= BITE * min(pieces[i].sum(), pieces[j].sum()) and min(a, b) <= 0.5 * max(a, b):
                return True
    return False


def _nearest(pieces: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """int HxW: the index of the nearest piece for every pixel."""
    label = np.zeros(shape, np.int32)
    for i, p in enumerate(pieces):
        label[p] = i + 1
    sites = np.where(label > 0, 0, 255).astype(np.uint8)
    _, nearest = cv2.distanceTransformWithLabels(sites, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    owner = np.zeros(int(nearest.max()) + 1, np.int32)
    ys, xs = np.nonzero(sites == 0)
    owner[nearest[ys, xs]] = label[ys, xs]
    return owner[nearest] - 1


def _hull(piece: np.ndarray) -> np.ndarray:
    pts = cv2.findNonZero(piece.astype(np.uint8))
    out = np.zeros(piece.shape, np.uint8)
    cv2.fillPoly(out, [cv2.convexHull(pts)], 1)
    return out > 0


def occlusion_order(pieces: list[np.ndarray], mass: list[float]) -> list[int]:
    """Indices of the pieces, front first (the module's order rule): the occlusion votes as edges front ->
    back, taken in topological order; among the pieces nothing is known to be in front of, the most mass
    first (a cycle: the most mass of those left)."""
    hulls = [_hull(p) for p in pieces]
    behind: dict[int, set[int]] = {i: set() for i in range(len(pieces))}  # i -> the pieces in front of i
    for i in range(len(pieces)):
        for j in range(i + 1, len(pieces)):
            in_i, in_j = int((hulls[i] & pieces[j]).sum()), int((hulls[j] & pieces[i]).sum())
            if abs(in_i - in_j) <= TIE * min(pieces[i].sum(), pieces[j].sum()):
                continue
            front, back = (i, j) if in_i < in_j else (j, i)
            behind[back].add(front)
    order: list[int] = []
    left = set(range(len(pieces)))
    while left:
        free = [i for i in left if not (behind[i] & left)] or list(left)
        pick = min(free, key=lambda i: (-mass[i], i))
        order.append(pick)
        left.discard(pick)
    return order


def split_overlapping(image: np.ndarray, mask: np.ndarray, threshold: float, min_share: float,
                      room: int) -> list[np.ndarray]:
    """One region's soft mask (HxW float) as up to `room` masks of overlapping objects, front first, adding
    up to `mask` exactly; [mask] when its colours do not split (see the module's doc)."""
    region = mask > threshold
    if room < 2 or not region.any():
        return [mask]
    ys, xs = np.nonzero(region)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    smooth = cv2.GaussianBlur(image[box], (0, 0), 2.0)
    lab = cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB).astype(np.float32)
    min_pixels = min_share * mask.size
    pieces = [region[box]]
    changed = True
    while changed and len(pieces) < room:
        changed = False
        for i, p in enumerate(pieces):
            cut = _cut(lab, p, min_pixels)
            if 1 < len(cut) <= room - len(pieces) + 1:
                pieces[i:i + 1] = cut
                changed = True
                break
    if len(pieces) < 2:
        return [mask]
    owner = np.full(mask.shape, -1, np.int32)
    owner[box] = _nearest(pieces, region[box].shape)
    owner[~(mask > 0)] = -1  # only the mask's own pixels are shared out; outside the box: the nearest edge piece
    outside = (mask > 0) & (owner == -1)
    if outside.any():  # soft fringe beyond the box (below the threshold): the piece nearest to it
        full = [np.zeros(mask.shape, bool) for _ in pieces]
        for i, p in enumerate(pieces):
            full[i][box] = p
        owner[outside] = _nearest(full, mask.shape)[outside]
    masses = [float(mask[owner == i].sum()) for i in range(len(pieces))]
    full_pieces = [owner == i for i in range(len(pieces))]
    return [np.where(full_pieces[i], mask, 0).astype(mask.dtype) for i in occlusion_order(
        [fp & region for fp in full_pieces], masses)]
