"""Scenes with known objects for peeling (issue 26): 1-3 objects, apart or overlapping, with each object's
visible mask, front to back.

`shape_scene`: flat-coloured discs and squares on a calm generated background (the easy case, used by the
tests). `photo_scene`: random shapes filled with recoloured crops of scikit-image photos, on photo crops
and textures, calm (blurred) or busy (the bench's harder case). Used by tests/ and `bench/bench_peel.py`.
"""
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


def _centres(rng: np.random.Generator, n: int, size: int, r: int, overlap: bool) -> list[tuple[int, int]]:
    if overlap:  # in a row, 1.3 radii apart: each object covers part of the next
        return [(size // 2 + int((i - (n - 1) / 2) * 1.3 * r), size // 2 + int(rng.integers(-r // 3, r // 3 + 1)))
                for i in range(n)]
    slots = [(size // 4, size // 4), (3 * size // 4, 3 * size // 4), (3 * size // 4, size // 4)]
    return [(x + int(rng.integers(-r // 4, r // 4 + 1)), y + int(rng.integers(-r // 4, r // 4 + 1)))
            for x, y in slots[:n]]


def _shape(rng: np.random.Generator | None, i: int, c: tuple[int, int], r: int, size: int) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    kind = i % 2 if rng is None else int(rng.integers(3))
    if kind == 1:
        cv2.rectangle(m, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), 1, -1)
    elif kind == 0:
        cv2.circle(m, c, r, 1, -1)
    else:
        ang = np.sort(rng.uniform(0, 2 * np.pi, 7))
        rad = r * rng.uniform(0.75, 1.2, 7)
        cv2.fillPoly(m, [np.stack([c[0] + rad * np.cos(ang), c[1] + rad * np.sin(ang)], 1).astype(np.int32)], 1)
    return m.astype(bool)


def _visible(full: list[np.ndarray]) -> list[np.ndarray]:
    """Object 0 is in front: each object's mask less the ones before it."""
    out = []
    for i, m in enumerate(full):
        v = m.copy()
        for j in range(i):
            v &= ~full[j]
        out.append(v)
    return out


def shape_scene(seed: int, n: int, size: int = 256, overlap: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """(image, visible masks front to back): flat-coloured discs and squares on a calm background."""
    rng = np.random.default_rng(seed)
    img = background(rng, size)
    r = size // 8 if n == 3 else size // 7
    full = [_shape(None, i, c, r, size) for i, c in enumerate(_centres(rng, n, size, r, overlap))]
    for i in reversed(range(n)):  # drawn back to front
        img[full[i]] = COLOURS[i]
    return img, _visible(full)


def photo_scene(seed: int, n: int, size: int = 256, overlap: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """(image, visible masks front to back): shapes filled with recoloured photo crops on a photo or texture."""
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    textures = [np.repeat(getattr(data, t)()[..., None], 3, 2) for t in ("brick", "grass", "gravel")]
    rng = np.random.default_rng(seed)
    src = (photos + textures)[seed % 7]
    bg = cv2.resize(src[: src.shape[0] // 2, : src.shape[1] // 2], (size, size), interpolation=cv2.INTER_AREA)
    if seed % 2:
        bg = cv2.GaussianBlur(bg, (0, 0), 4)  # half calm, half busy
    img = bg.astype(np.float32)
    r = size // 8 if n == 3 else size // 7
    full = [_shape(rng, i, c, r, size) for i, c in enumerate(_centres(rng, n, size, r, overlap))]
    for i in reversed(range(n)):
        obj_src = photos[(seed + 1 + i) % len(photos)]
        oy, ox = rng.integers(0, obj_src.shape[0] - size), rng.integers(0, obj_src.shape[1] - size)
        obj = obj_src[oy:oy + size, ox:ox + size].astype(np.float32)
        obj = np.clip(obj * rng.uniform(0.6, 1.4, 3) + rng.uniform(-40, 40, 3), 0, 255)
        img[full[i]] = obj[full[i]]
    return np.clip(img, 0, 255).astype(np.uint8), _visible(full)
