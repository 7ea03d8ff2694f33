"""Scenes with known objects for the peeling tests and bench/bench_peel.py: a smooth textured background
and 1-3 flat-coloured shapes, apart or overlapping, with each object's visible mask."""
from __future__ import annotations

import cv2
import numpy as np

COLOURS = [(220, 40, 40), (40, 70, 220), (240, 220, 40), (40, 200, 90)]


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    phase = rng.uniform(0, 6, 3)
    bg = np.stack([110 + 15 * np.sin(xx / 17 + phase[0]), 120 + 12 * np.cos(yy / 13 + phase[1]),
                   105 + 10 * np.sin((xx + yy) / 21 + phase[2])], 2)
    return np.clip(bg + rng.normal(0, 3, bg.shape), 0, 255).astype(np.uint8)


def scene(seed: int, n: int, size: int = 256, overlap: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """(image, visible masks front to back). Objects are drawn back to front; with `overlap` each one
    partly covers the one behind it, else they are apart (separate components)."""
    rng = np.random.default_rng(seed)
    img = background(rng, size)
    r = size // 8 if n == 3 else size // 7
    if overlap:
        centres = [(size // 2 + int((i - (n - 1) / 2) * 1.3 * r), size // 2 + int(rng.integers(-r // 3, r // 3)))
                   for i in range(n)]
    else:
        slots = [(size // 4, size // 4), (3 * size // 4, 3 * size // 4), (3 * size // 4, size // 4)]
        centres = [(x + int(rng.integers(-r // 4, r // 4)), y + int(rng.integers(-r // 4, r // 4)))
                   for x, y in slots[:n]]
    full = []
    for i, c in enumerate(centres):
        m = np.zeros((size, size), np.uint8)
        if i % 2:
            cv2.rectangle(m, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), 1, -1)
        else:
            cv2.circle(m, c, r, 1, -1)
        full.append(m.astype(bool))
    visible = []
    for i in range(n):  # object 0 is in front
        v = full[i].copy()
        for j in range(i):
            v &= ~full[j]
        visible.append(v)
    for i in reversed(range(n)):
        img[full[i]] = COLOURS[i]
    return img, visible
