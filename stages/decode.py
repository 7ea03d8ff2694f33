"""Decode + resize/crop: downloaded bytes -> I, an RGB uint8 image at the working resolution.

Every way a web image can be bad ends here as a rejection reason, never an exception:
empty body, not an image (HTML), truncated file, decompression bomb (refused from the header, before
pixels are decoded), too small, extreme aspect ratio. Odd-but-valid images are normalised instead:
EXIF orientation applied, CMYK / 16-bit / grayscale / palette / RGBA converted to RGB, animated -> frame 0.
"""
from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from l2i_pipeline.core.config import DecodeConfig
from l2i_pipeline.core.sample import Sample
from l2i_pipeline.formats.names import JPG
from stages.base import PerSampleStage


class Rejected(Exception):
    """A sample-level failure with a stable reason string."""


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / float grayscale: scale, don't clip
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        g = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):  # transparent pixels composited on white
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def decode_image(data: bytes | None, cfg: DecodeConfig, resolution: int) -> tuple[np.ndarray, dict]:
    """Bytes -> (RGB uint8 array, info). Raises Rejected(reason)."""
    if not data:
        raise Rejected("decode:empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # over twice Pillow's limit: refused from the header
        raise Rejected("decode:too_many_pixels") from None
    except UnidentifiedImageError:
        head = data[:64].lstrip().lower()
        raise Rejected("decode:html" if head.startswith(b"<") else "decode:not_an_image") from None
    except Exception as e:  # noqa: BLE001 - any parser failure is a rejected sample
        raise Rejected(f"decode:unreadable:{type(e).__name__}") from None
    w, h = img.size
    info = {"orig_width": w, "orig_height": h, "format": img.format, "mode": img.mode,
            "frames": getattr(img, "n_frames", 1)}
    if w * h > cfg.max_pixels:
        raise Rejected("decode:too_many_pixels")
    if min(w, h) < cfg.min_size:
        raise Rejected("decode:too_small")
    if max(w, h) / min(w, h) > cfg.max_aspect_ratio:
        raise Rejected("decode:aspect_ratio")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if img.format == "JPEG":  # decode at a reduced DCT scale when the image is much larger
                img.draft("RGB", (resolution, resolution))
            img.seek(0)
            img.load()
            info["exif_orientation"] = int(img.getexif().get(0x0112, 1) or 1)
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
    except Rejected:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        reason = "decode:truncated" if "truncated" in str(e).lower() else f"decode:corrupt:{type(e).__name__}"
        raise Rejected(reason) from None
    return np.ascontiguousarray(rgb), info


def resize_center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """Short side to `size`, then the centred size x size square (the paper works at 512x512)."""
    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    out = cv2.resize(rgb, (nw, nh), interpolation=interp)
    y, x = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(out[y:y + size, x:x + size])


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> tuple[np.ndarray, bytes]:
    """Encode I once; I becomes what the stored jpg decodes to, so F and B identities hold on disk."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    data = buf.getvalue()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), data


class DecodeStage(PerSampleStage):
    name = "decode"

    def apply(self, s: Sample) -> None:
        try:
            rgb, info = decode_image(s.raw, self.cfg.decode, self.cfg.resolution)
        except Rejected as r:
            s.reject(str(r))
            return
        s.meta.update(info)
        s.raw = None
        image = resize_center_crop(rgb, self.cfg.resolution)
        s.image, jpg = jpeg_roundtrip(image, self.cfg.jpeg_quality)
        s.members = {JPG: jpg}

