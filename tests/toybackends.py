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
