"""Server-side views of a sample, JPEG-encoded: what each task page shows.

mask page:    image (I), mask (I with m tinted red and its 0.5 contour), cutout (F over a checkerboard, alpha m)
inpaint page: image_outline (I with m~ outlined), bg_outline (B with m~ outlined), and bg / image plain
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

JPEG_QUALITY = 90
VIEWS = ("image", "mask", "cutout", "bg", "bg_outline", "image_outline")


def _decode(data: bytes, flags: int) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise ValueError("undecodable image member")
    return img


def _color(read: Callable[[str], bytes], member: str) -> np.ndarray:
    return _decode(read(member), cv2.IMREAD_COLOR)


def _gray(read: Callable[[str], bytes], member: str, shape: tuple[int, int]) -> np.ndarray:
    g = _decode(read(member), cv2.IMREAD_GRAYSCALE)
    if g.shape != shape:
        g = cv2.resize(g, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return g


def _outline(img: np.ndarray, binary: np.ndarray, thin: bool = False) -> np.ndarray:
    """Dark-then-bright contour, visible on light and dark backgrounds; thin where edges are being judged."""
    contours, _ = cv2.findContours(binary.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = img.copy()
    thick = 1 if thin else max(1, round(min(img.shape[:2]) / 256))
    if not thin:
        cv2.drawContours(out, contours, -1, (0, 0, 0), 2 * thick + 1, lineType=cv2.LINE_AA)
    cv2.drawContours(out, contours, -1, (0, 255, 255), thick, lineType=cv2.LINE_AA)
    return out


def _checkerboard(shape: tuple[int, int], cell: int = 16) -> np.ndarray:
    yy, xx = np.indices(shape)
    light = ((yy // cell + xx // cell) % 2 == 0)
    board = np.where(light, 205, 150).astype(np.uint8)
    return np.repeat(board[:, :, None], 3, axis=2)


def render(read: Callable[[str], bytes], view: str) -> bytes:
    """JPEG bytes of one view; `read(member)` returns the member's encoded bytes."""
    if view == "bg":
        img = _color(read, "bg.png")
    elif view == "image":
        img = _color(read, "jpg")
    else:
        base = _color(read, "bg.png" if view == "bg_outline" else "jpg")
        shape = base.shape[:2]
        if view == "mask":
            m = _gray(read, "mask.png", shape).astype(np.float32)[:, :, None] / 255.0
            red = np.array([40, 40, 255], np.float32)
            img = (base * (1 - 0.5 * m) + red * 0.5 * m).astype(np.uint8)
            img = _outline(img, m[:, :, 0] >= 0.5, thin=True)
        elif view == "cutout":
            fg = _color(read, "fg.png")
            if fg.shape[:2] != shape:
                fg = cv2.resize(fg, (shape[1], shape[0]))
            a = _gray(read, "mask.png", shape).astype(np.float32)[:, :, None] / 255.0
            img = (fg * a + _checkerboard(shape) * (1 - a)).astype(np.uint8)
        elif view in ("bg_outline", "image_outline"):
            img = _outline(base, _gray(read, "inpaint_mask.png", shape) > 127)
        else:
            raise ValueError(f"unknown view {view!r}")
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
