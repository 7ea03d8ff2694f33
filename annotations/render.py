"""Server-side views of a sample, JPEG-encoded: what each task page shows.

mask page:    image (I), mask (I with m tinted red and its 0.5 contour), cutout (F over a checkerboard, alpha m)
inpaint page: image_outline (I with m~ outlined), bg_outline (B with m~ outlined), and bg / image plain
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from l2i_pipeline.formats import mask8
from l2i_pipeline.formats.decode import COLOR, GRAY, decode_image
from l2i_pipeline.formats.names import BG, FG, INPAINT_MASK, JPG, MASK

JPEG_QUALITY = 90
VIEWS = ("image", "mask", "cutout", "bg", "bg_outline", "image_outline")


def _color(read: Callable[[str], bytes], member: str) -> np.ndarray:
    return decode_image(read(member), COLOR, member, rgb=False)  # BGR: drawn and encoded by OpenCV


def _gray(read: Callable[[str], bytes], member: str, shape: tuple[int, int]) -> np.ndarray:
    g = decode_image(read(member), GRAY, member)
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
        img = _color(read, BG)
    elif view == "image":
        img = _color(read, JPG)
    else:
        base = _color(read, BG if view == "bg_outline" else JPG)
        shape = base.shape[:2]
        if view == "mask":
            m = mask8.decode(_gray(read, MASK, shape))[:, :, None]
            red = np.array([40, 40, 255], np.float32)
            img = (base * (1 - 0.5 * m) + red * 0.5 * m).astype(np.uint8)
            img = _outline(img, m[:, :, 0] >= 0.5, thin=True)
        elif view == "cutout":
            fg = _color(read, FG)
            if fg.shape[:2] != shape:
                fg = cv2.resize(fg, (shape[1], shape[0]))
            a = mask8.decode(_gray(read, MASK, shape))[:, :, None]
            img = (fg * a + _checkerboard(shape) * (1 - a)).astype(np.uint8)
        elif view in ("bg_outline", "image_outline"):
            img = _outline(base, _gray(read, INPAINT_MASK, shape) > mask8.ON // 2)
        else:
            raise ValueError(f"unknown view {view!r}")
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
