"""Layers (paper III-C): F = I where m > t; m~ = dilation of the binarised mask; area and component checks."""
from __future__ import annotations

import logging

import cv2
import numpy as np

from l2i_pipeline.core.config import LayersConfig
from l2i_pipeline.core.sample import Sample
from l2i_pipeline.formats import mask8
from l2i_pipeline.formats.decode import Layer
from stages.base import PerSampleStage

log = logging.getLogger(__name__)
MIN_COMPONENT = 100  # pixels; the paper's component statistics ignore smaller ones (Appendix II)


def foreground(image: np.ndarray, mask: np.ndarray, threshold: float) -> np.ndarray:
    """I where m > threshold, black elsewhere (OpenCV's masked AND: a third of np.where's time)."""
    keep = (mask > threshold).astype(np.uint8)
    return cv2.bitwise_and(image, image, mask=keep)


def dilated_mask(mask: np.ndarray, threshold: float, kernel: int, iterations: int) -> np.ndarray:
    """m~: uint8 0/255, the binarised mask grown so inpainting also covers the object's fuzzy border."""
    binary = mask8.binary(mask > threshold)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    return cv2.dilate(binary, k, iterations=iterations) if iterations > 0 else binary


def count_components(binary: np.ndarray, min_area: int = MIN_COMPONENT) -> int:
    """8-connected components of at least min_area pixels."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    return int((stats[1:, cv2.CC_STAT_AREA] >= min_area).sum())


def split_components(mask: np.ndarray, threshold: float, min_share: float) -> list[np.ndarray]:
    """The soft mask cut into one mask per separate object, most salient first (issue 26).

    An object is an 8-connected component of `mask > threshold` covering at least `min_share` of the
    image. Every pixel goes to its nearest object (smaller specks and the soft fringe below the threshold
    included), so the parts add up to `mask` exactly. Order: the object holding the most saliency (the sum
    of m over it: size times confidence) first; ties by the first pixel in raster order. Fewer than two
    objects: [mask] unchanged."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats((mask > threshold).astype(np.uint8), connectivity=8)
    big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_share * mask.size]
    if len(big) < 2:
        return [mask]
    sites = np.where(np.isin(labels, big), 0, 255).astype(np.uint8)  # distance to the nearest object
    _, nearest = cv2.distanceTransformWithLabels(sites, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    owner = np.zeros(int(nearest.max()) + 1, np.int32)  # nearest object pixel -> its component
    ys, xs = np.nonzero(sites == 0)
    owner[nearest[ys, xs]] = labels[ys, xs]
    region = owner[nearest]
    mass = {i: float(mask[labels == i].sum()) for i in big}
    first = {i: int(np.argmax((labels == i).ravel())) for i in big}
    order = sorted(big, key=lambda i: (-mass[i], first[i]))
    return [np.where(region == i, mask, 0).astype(mask.dtype) for i in order]


def check_area(area: float, cfg: LayersConfig) -> str | None:
    """The paper's mask checks: the reason a mask of this area is not a layer, else None."""
    if area == 0.0:
        return "layers:mask_empty"
    if area < cfg.min_area:
        return "layers:mask_too_small"
    if area > cfg.max_area:
        return "layers:mask_too_large"
    return None


def split_for_peeling(mask: np.ndarray, cfg: LayersConfig, room: int,
                      image: np.ndarray | None = None) -> tuple[np.ndarray, list[Layer]]:
    """With layers.count > 1: the first object's mask, and up to `room` further objects queued as layers
    (mask only) for the peel stage. layers.split=occlusion also cuts each part into overlapping objects
    (stages/overlap.py), front first, in the part's place."""
    share = max(cfg.min_component_area, cfg.min_area)
    parts = split_components(mask, cfg.threshold, share)
    if cfg.split == "occlusion" and image is not None:
        from stages.overlap import split_overlapping

        parts = [q for p in parts for q in split_overlapping(image, p, cfg.threshold, share, 1 + room)]
    return parts[0], [Layer(mask=p, meta={"from_split": True}) for p in parts[1:1 + room]]


def make_layers(s: Sample, cfg: LayersConfig) -> None:
    binary = s.mask > cfg.threshold
    area = float(binary.mean())
    s.meta["mask_area"] = round(area, 6)
    s.meta["components"] = count_components(binary)
    reason = check_area(area, cfg)
    if reason:  # the whole mask: a sample is kept or rejected as with layers.count=1
        s.reject(reason)
        return
    if cfg.count > 1:  # layer 1 is the first object; the others wait for the peel stage (stages/peel.py)
        s.mask, s.peels = split_for_peeling(s.mask, cfg, cfg.count - 1, s.image)
        s.meta["mask_area"] = round(float((s.mask > cfg.threshold).mean()), 6)
    s.fg = foreground(s.image, s.mask, cfg.threshold)
    s.inpaint_mask = dilated_mask(s.mask, cfg.threshold, cfg.dilate_kernel, cfg.dilate_iterations)
    s.meta["inpaint_area"] = round(float((s.inpaint_mask > 0).mean()), 6)
    s.meta["layers"] = {"threshold": cfg.threshold, "dilate_kernel": cfg.dilate_kernel,
                        "dilate_iterations": cfg.dilate_iterations}
    if cfg.alpha == "matting":
        add_soft_alpha(s, cfg)


def add_soft_alpha(s: Sample, cfg: LayersConfig) -> None:
    """layers.alpha=matting: s.alpha and s.fg_rgba beside the paper's layers; a failed solve rejects the
    sample with the reason recorded (a shard made with matting has alpha members in every sample)."""
    from stages.matting import MattingError, soft_alpha

    try:
        s.alpha, s.fg_rgba = soft_alpha(s.image, s.mask, cfg)
    except MattingError as e:
        log.warning("matting failed on %s: %s", s.key, e)
        s.reject("layers:matting_failed")
        return
    s.meta["layers"].update({"alpha": cfg.alpha, "band": cfg.band, "matting_scale": cfg.matting_scale})


class LayersStage(PerSampleStage):
    name = "layers"

    def apply(self, sample: Sample) -> None:
        make_layers(sample, self.cfg.layers)
