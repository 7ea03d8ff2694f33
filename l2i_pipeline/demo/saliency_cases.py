"""Generated saliency cases: images with no salient object, and composed scenes with a known one.

Used by the tests (a classical backend must reject the first kind and find the second) and by
`bench/bench_saliency.py`, which prints each backend's mask IoU on the scenes and its no-object rejections.
"""
from __future__ import annotations

import cv2
import numpy as np


def no_object_cases(size: int = 160) -> dict[str, np.ndarray]:
    """Flat colours, smooth gradients, sensor noise and uniform textures, each an RGB uint8 image."""
    h, w = size, int(size * 1.25)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    for name, c in {"flat_grey": (128, 128, 128), "flat_red": (200, 30, 40), "flat_black": (0, 0, 0),
                    "flat_white": (255, 255, 255)}.items():
        out[name] = np.full((h, w, 3), c, np.uint8)
    def ramp(t: np.ndarray, a, b) -> np.ndarray:
        return (np.asarray(a, np.float32) + t[..., None] * (np.asarray(b, np.float32) - np.asarray(a, np.float32)))
    out["gradient_horizontal"] = ramp(xx / w, (0, 0, 0), (255, 255, 255))
    out["gradient_vertical_sky"] = ramp(yy / h, (40, 90, 200), (220, 235, 255))
    out["gradient_diagonal"] = ramp((xx + yy) / (w + h), (250, 120, 20), (30, 20, 120))
    r = np.sqrt((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / np.hypot(w / 2, h / 2)
    out["gradient_radial_vignette"] = ramp(r, (230, 220, 200), (40, 35, 30))
    out["noise_grey_sigma20"] = 128 + rng.normal(0, 20, (h, w, 3))
    out["noise_colour_sigma40"] = np.stack([100, 140, 90], 0) + rng.normal(0, 40, (h, w, 3))
    out["noise_dark_sensor"] = 20 + rng.poisson(6, (h, w, 1)).repeat(3, 2) * 3 + rng.normal(0, 3, (h, w, 3))
    out["noise_uniform_0_255"] = rng.integers(0, 256, (h, w, 3))
    out["texture_checker"] = np.where(((xx // 10 + yy // 10) % 2 == 0)[..., None], (200, 190, 60), (60, 70, 160))
    out["texture_stripes"] = 128 + 90 * np.sin(xx / 3.0)[..., None] * np.array([1.0, 0.6, 0.2])
    blobs = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 3)
    out["texture_blobs"] = 120 + (blobs / blobs.std() * 35)[..., None] * np.array([1.0, 0.8, 0.5])
    from skimage import data

    for name in ("brick", "grass", "gravel"):
        tex = getattr(data, name)()[:h, :w].astype(np.float32)
        out[f"texture_{name}"] = np.repeat(tex[..., None], 3, 2) * np.array([1.0, 0.95, 0.85])
    return {k: np.clip(np.round(v), 0, 255).astype(np.uint8) for k, v in out.items()}


def _shape_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random ellipse, rectangle or star-ish polygon covering ~5-40% of the image."""
    m = np.zeros((h, w), np.uint8)
    cy, cx = int(h * rng.uniform(0.35, 0.65)), int(w * rng.uniform(0.35, 0.65))
    s = min(h, w) * rng.uniform(0.15, 0.35)
    kind = rng.integers(3)
    if kind == 0:
        cv2.ellipse(m, (cx, cy), (int(s * rng.uniform(0.7, 1.3)), int(s)), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif kind == 1:
        cv2.rectangle(m, (int(cx - s), int(cy - 0.7 * s)), (int(cx + s), int(cy + 0.7 * s)), 1, -1)
    else:
        n = int(rng.integers(5, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = s * rng.uniform(0.6, 1.2, n)
        pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(m, [pts], 1)
    return m.astype(bool)


def composed_scenes(n: int = 24, size: int = 160, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB image, true object mask) pairs: a cut-out of a real photo pasted on a real background."""
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    textures = [np.repeat(getattr(data, t)()[..., None], 3, 2) for t in ("brick", "grass", "gravel")]
    rng = np.random.default_rng(seed)
    h, w = size, int(size * 1.25)
    out = []
    for i in range(n):
        src = (photos + textures)[i % (len(photos) + len(textures))]
        bg = cv2.resize(src[: src.shape[0] // 2, : src.shape[1] // 2], (w, h), interpolation=cv2.INTER_AREA)
        if i % 2:  # half the backgrounds are calm (a blurred photo), half busy (a photo or texture crop)
            bg = cv2.GaussianBlur(bg, (0, 0), 4)
        obj_src = photos[(i + 1 + i // 7) % len(photos)]
        oy, ox = rng.integers(0, obj_src.shape[0] - h), rng.integers(0, obj_src.shape[1] - w)
        obj = obj_src[oy:oy + h, ox:ox + w].astype(np.float32)
        obj = np.clip(obj * rng.uniform(0.6, 1.4, 3) + rng.uniform(-40, 40, 3), 0, 255)  # recoloured
        mask = _shape_mask(rng, h, w)
        img = np.where(mask[..., None], obj, bg.astype(np.float32))
        out.append((np.clip(img, 0, 255).astype(np.uint8), mask))
    return out


def object_scenes(cutouts: list[tuple[np.ndarray, np.ndarray]], n: int = 24, size: int = 256,
                  seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB image, true object mask) pairs: whole objects cut from real photos (RGB, bool mask pairs, e.g. a
    network's confident masks) pasted at random scale and place on real backgrounds (photo crops and
    textures, calm or busy). The pasted mask is the truth."""
    from skimage import data

    backgrounds = [data.astronaut()[:256, 300:], data.coffee()[:200], data.rocket()[:250],
                   *[np.repeat(getattr(data, t)()[..., None], 3, 2) for t in ("brick", "grass", "gravel")]]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        bg = cv2.resize(backgrounds[i % len(backgrounds)], (size, size), interpolation=cv2.INTER_AREA)
        if (i // len(backgrounds)) % 2:
            bg = cv2.GaussianBlur(bg, (0, 0), 3)
        rgb, mask = cutouts[(i * 7 + i // 5) % len(cutouts)]
        ys, xs = np.nonzero(mask)
        box = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
        rgb, mask = rgb[box], mask[box]
        scale = size * rng.uniform(0.45, 0.8) / max(mask.shape)
        oh, ow = max(2, round(mask.shape[0] * scale)), max(2, round(mask.shape[1] * scale))
        obj = cv2.resize(rgb, (ow, oh), interpolation=cv2.INTER_AREA)
        m = cv2.resize(mask.astype(np.uint8), (ow, oh), interpolation=cv2.INTER_NEAREST).astype(bool)
        y, x = int(rng.integers(0, size - oh + 1)), int(rng.integers(0, size - ow + 1))
        img, truth = bg.copy(), np.zeros((size, size), bool)
        img[y:y + oh, x:x + ow][m] = obj[m]
        truth[y:y + oh, x:x + ow] = m
        out.append((img, truth))
    return out
