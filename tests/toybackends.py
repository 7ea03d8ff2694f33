"""Backends for runner tests, named by import path (`inpaint.backend=toybackends:...`, tests/ is on the path)."""
from __future__ import annotations

import threading
import time

import numpy as np


class CountingInpainter:
    """Records how many calls are inside it at once; `thread_safe` says whether the runner may overlap them."""

    uses_gpu = True
    thread_safe = False
    lock = threading.Lock()
    inside = 0
    peak = 0

    def __init__(self, cfg, seed: int = 0):
        self.cfg = cfg

    def check(self) -> None:
        """Nothing to load."""

    def setup(self) -> None:
        """Nothing to load."""

    def inpaint(self, images: list[np.ndarray], masks: list[np.ndarray], keys: list[str]) -> list[np.ndarray]:
        cls = type(self)
        with cls.lock:
            cls.inside += 1
            cls.peak = max(cls.peak, cls.inside)
        time.sleep(0.2)
        with cls.lock:
            cls.inside -= 1
        return [np.full_like(im, 128) for im in images]

    def describe(self) -> dict:
        return {"backend": "counting"}


class ThreadSafeCountingInpainter(CountingInpainter):
    thread_safe = True
    lock = threading.Lock()
    inside = 0
    peak = 0


class FailsOnLayer3:
    """Inpaints with each image's median colour; raises for the peel views of layer 3 (keys `KEY/l3`)."""

    uses_gpu = False

    def __init__(self, cfg, seed: int = 0):
        self.cfg = cfg

    def check(self) -> None:
        """Nothing to load."""

    def setup(self) -> None:
        """Nothing to load."""

    def inpaint(self, images: list[np.ndarray], masks: list[np.ndarray], keys: list[str]) -> list[np.ndarray]:
        if any(k.endswith("/l3") for k in keys):
            raise RuntimeError("out of memory (a test's failure)")
        return [np.broadcast_to(np.median(im.reshape(-1, 3), 0).astype(np.uint8), im.shape).copy() for im in images]

    def describe(self) -> dict:
        return {"backend": "fails_on_layer_3"}


class GpuMedianInpainter(FailsOnLayer3):
    """The median fill on a (pretend) GPU: the runners put it, and the peel stage, in the device actors."""

    uses_gpu = True

    def inpaint(self, images: list[np.ndarray], masks: list[np.ndarray], keys: list[str]) -> list[np.ndarray]:
        return [np.broadcast_to(np.median(im.reshape(-1, 3), 0).astype(np.uint8), im.shape).copy() for im in images]

    def describe(self) -> dict:
        return {"backend": "gpu_median"}


class CentreDisc:
    """Saliency that marks the same centred disc on every image (a backend that re-finds a layer's ghost)."""

    uses_gpu = False

    def __init__(self, cfg):
        self.cfg = cfg

    def check(self) -> None:
        """Nothing to load."""

    def setup(self) -> None:
        """Nothing to load."""

    def predict(self, images: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        out = []
        for im in images:
            h, w = im.shape[:2]
            yy, xx = np.mgrid[0:h, 0:w]
            out.append((((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (h / 5) ** 2).astype(np.float32))
        return out

    def describe(self) -> dict:
        return {"backend": "centre_disc"}


class GhostInpainter(FailsOnLayer3):
    """Fills the hole with the surroundings' median and, where the object was, a flat blue: a ghost of the
    removed object that a saliency pass can find again."""

    def inpaint(self, images: list[np.ndarray], masks: list[np.ndarray], keys: list[str]) -> list[np.ndarray]:
        import cv2

        out = []
        for im, m in zip(images, masks):
            core = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (29, 29))) > 0  # the object's place
            fill = np.broadcast_to(np.median(im[m == 0], 0).astype(np.uint8), im.shape).copy()
            fill[core] = (30, 30, 200)
            out.append(fill)
        return out
