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
