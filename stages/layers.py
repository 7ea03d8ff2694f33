"""Layers (paper III-C): F = I where m > t; m~ = dilation of the binarised mask; area and component checks."""
from __future__ import annotations

import logging

import cv2
import numpy as np

from l2i_pipeline.core.config import LayersConfig
from l2i_pipeline.core.sample import Sample
from stages.base import PerSampleStage

log = logging.getLogger(__name__)
MIN_COMPONENT = 100  # pixels; the paper's component statistics ignore smaller ones (Appendix II)


def foreground(image: np.ndarray, mask: np.ndarray, threshold: float) -> np.ndarray:
    """I where m > threshold, black elsewhere (OpenCV's masked AND: a third of np.where's time)."""
    keep = (mask > threshold).astype(np.uint8)
    return cv2.bitwise_and(image, image, mask=keep)


def dilated_mask(mask: np.ndarray, threshold: float, kernel: int, iterations: int) -> np.ndarray:
    """m~: uint8 0/255, the binarised mask grown so inpainting also covers the object's fuzzy border."""
    binary = (mask > threshold).astype(np.uint8) * 255
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    return cv2.dilate(binary, k, iterations=iterations) if iterations > 0 else binary


def count_components(binary: np.ndarray, min_area: int = MIN_COMPONENT) -> int:
    """8-connected components of at least min_area pixels."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    return int((stats[1:, cv2.CC_STAT_AREA] >= min_area).sum())


def make_layers(s: Sample, cfg: LayersConfig) -> None:
    binary = s.mask > cfg.threshold
    area = float(binary.mean())
    s.meta["mask_area"] = round(area, 6)
    s.meta["components"] = count_components(binary)
    if area == 0.0:
        s.reject("layers:mask_empty")
        return
    if area < cfg.min_area:
        s.reject("layers:mask_too_small")
        return
    if area > cfg.max_area:
        s.reject("layers:mask_too_large")
        return
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
