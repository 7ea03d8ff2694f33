"""One generated two-layer image as files a designer opens: PNGs, RGBA foreground, OpenRaster, .psd.

Arrays are uint8 HxWx3 (F̂, B̂, Î) and float HxW in [0, 1] (m̂). The RGBA foreground takes alpha = m̂.
Its colour is F̂ where the mask is opaque; across the soft band (0 < m̂ < 1) it is the colour that, drawn
with alpha m̂ over B̂, gives back what the model saw there: C = (Î − (1 − m̂)B̂) / m̂ ("un-mixing"). F̂
itself cannot be used in the band: the dataset cut F as F = I where m > FG_THRESHOLD, so F̂'s band already
holds the edge mixed with the background, and below the threshold F̂ is a black fill; drawn with alpha m̂
either one darkens the edge (the dark halo of layered generators). Without Î, F̂ stands in for it where it
is defined (m̂ >= FG_THRESHOLD) and the un-mixed colours are spread outward below.

`composite.png` is the paper's Ĉ = m̂F̂ + (1 − m̂)B̂ (what `l2i eval` scores, as in the paper's tables);
the .ora's `mergedimage.png` is what its stored layers draw, halo-free. They are different images on
purpose and agree where m̂ is 0 or 1. The .ora's bytes are deterministic (no wall-clock times in it).
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import cv2
import numpy as np
from PIL import Image

from l2i_pipeline.core import layerfiles
from l2i_pipeline.core.layerfiles import ZIP_TIME  # noqa: F401 - the .ora entries' date, as before
from l2i_pipeline.formats import mask8
from l2i_pipeline.formats.names import BG, COMPOSITE, FG, FG_RGBA, IMAGE, MASK, ORA, PSD

FG_THRESHOLD = mask8.CUT  # the synthesize stage's F = I where m > 0.1
THUMBNAIL_MAX = 256


@dataclass
class Layers:
    fg: np.ndarray | None  # uint8 HxWx3; None (with bg, mask) for a plain text-to-image baseline
    bg: np.ndarray | None  # uint8 HxWx3
    mask: np.ndarray | None  # float32 HxW in [0, 1]
    image: np.ndarray | None = None  # uint8 HxWx3, the auxiliary Î (None for "no-sup")

    @property
    def layered(self) -> bool:
        return self.mask is not None


def to_uint8(x) -> np.ndarray:
    """A CHW (or HW) tensor/array in [-1, 1] -> HWC (or HW) uint8."""
    a = np.asarray(x.detach().float().cpu() if hasattr(x, "detach") else x, dtype=np.float32)
    if a.ndim == 3:
        a = a.transpose(1, 2, 0)
    return np.clip(np.rint((a + 1) * 127.5), 0, 255).astype(np.uint8)


def composite(layers: Layers) -> np.ndarray:
    """Ĉ = m̂F̂ + (1 − m̂)B̂."""
    m = layers.mask[..., None].astype(np.float32)
    c = m * layers.fg.astype(np.float32) + (1 - m) * layers.bg.astype(np.float32)
    return np.clip(np.rint(c), 0, 255).astype(np.uint8)


def unmix(seen: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The colour C with alpha·C + (1 − alpha)·bg = seen (clipped to [0, 255]); alpha HxW in (0, 1]."""
    a = np.maximum(alpha, 1e-6)[..., None]
    c = (seen.astype(np.float32) - (1 - a) * bg.astype(np.float32)) / a
    return np.clip(np.rint(c), 0, 255).astype(np.uint8)


def fg_rgba(layers: Layers) -> np.ndarray:
    """HxWx4 uint8: alpha = m̂, colour F̂ where opaque and un-mixed across the soft band (module docstring)."""
    alpha8 = mask8.encode(layers.mask)
    alpha = mask8.decode(alpha8)  # the alpha a viewer will use, so that over(...) gives `seen` back
    opaque, clear = alpha8 == 255, alpha8 == 0
    if layers.image is not None:
        colour = np.where(clear[..., None], layers.image, unmix(layers.image, layers.bg, alpha))
    else:
        known = ~clear & (layers.mask >= FG_THRESHOLD)  # F̂ = I there, as in the data
        colour = unmix(layers.fg, layers.bg, alpha)
        colour = cv2.inpaint(colour, (~known).astype(np.uint8), 3, cv2.INPAINT_TELEA)
    colour = np.where(opaque[..., None], layers.fg, colour)
    return np.dstack([colour, alpha8])


def over(top_rgba: np.ndarray, bottom_rgb: np.ndarray) -> np.ndarray:
    """Straight-alpha "source over" of an RGBA layer on an opaque one, as ORA viewers draw it."""
    a = top_rgba[..., 3:4].astype(np.float32) / 255
    c = a * top_rgba[..., :3].astype(np.float32) + (1 - a) * bottom_rgb.astype(np.float32)
    return np.clip(np.rint(c), 0, 255).astype(np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _thumbnail(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(1.0, THUMBNAIL_MAX / max(h, w))
    if s == 1.0:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def ora_bytes(layers: Layers) -> bytes:
    """OpenRaster: `mimetype` first and stored, stack.xml (top layer first), data/*.png, merged, thumbnail.

    Stack, top to bottom: the mask (hidden, for selections), the foreground with alpha, the background.
    mergedimage.png is the visible layers composited exactly as stored.
    """
    h, w = layers.mask.shape
    fg = fg_rgba(layers)
    merged = over(fg, layers.bg)
    stack = [("mask", "data/mask.png", png_bytes(mask8.encode(layers.mask)), "hidden"),
             ("foreground", "data/foreground.png", png_bytes(fg), "visible"),
             ("background", "data/background.png", png_bytes(layers.bg), "visible")]
    xml = ["<?xml version='1.0' encoding='UTF-8'?>", f'<image version="0.0.5" w="{w}" h="{h}">', "<stack>"]
    for name, src, _, visibility in stack:
        xml.append(f'<layer name={quoteattr(name)} src="{src}" visibility="{visibility}" x="0" y="0" '
                   'opacity="1.000" composite-op="svg:src-over" />')
    xml += ["</stack>", "</image>"]
    entries = [("mimetype", b"image/openraster", zipfile.ZIP_STORED),
               ("stack.xml", "\n".join(xml).encode(), zipfile.ZIP_DEFLATED)]
    entries += [(src, data, zipfile.ZIP_STORED) for _, src, data, _ in stack]  # PNGs are compressed already
    entries += [("mergedimage.png", png_bytes(merged), zipfile.ZIP_STORED),
                ("Thumbnails/thumbnail.png", png_bytes(_thumbnail(merged)), zipfile.ZIP_STORED)]
    return layerfiles.zip_bytes(entries)


FORMATS = ("png", "rgba", "ora", "psd")
DEFAULT_FORMATS = ("png", "rgba", "ora")  # psd on request (`l2i sample --format ...,psd`)


def psd_stack(layers: Layers) -> list[layerfiles.Layer]:
    """The .psd's layers, top first: the mask (hidden), Î (hidden, when there is one), the halo-free
    foreground with alpha (fg_rgba), the background; its merged image is what the .ora shows."""
    stack = [layerfiles.Layer("mask", mask8.encode(layers.mask), visible=False)]
    if layers.image is not None:
        stack.append(layerfiles.Layer("image", layers.image, visible=False))
    return stack + [layerfiles.Layer("foreground", fg_rgba(layers)), layerfiles.Layer("background", layers.bg)]


def export_files(layers: Layers, formats: tuple[str, ...] = DEFAULT_FORMATS) -> dict[str, bytes]:
    """{file name: bytes} for one sample: png -> fg/bg/mask/image/composite.png, rgba, ora, psd.

    A plain text-to-image sample (the SD-LAION-L2I baseline) has only image.png and composite.png.
    """
    out: dict[str, bytes] = {}
    if not layers.layered:
        image = png_bytes(layers.image)
        return {IMAGE: image, COMPOSITE: image} if "png" in formats else {}
    if "png" in formats:
        out[FG] = png_bytes(layers.fg)
        out[BG] = png_bytes(layers.bg)
        out[MASK] = png_bytes(mask8.encode(layers.mask))
        if layers.image is not None:
            out[IMAGE] = png_bytes(layers.image)
        out[COMPOSITE] = png_bytes(composite(layers))
    if "rgba" in formats:
        out[FG_RGBA] = png_bytes(fg_rgba(layers))
    if "ora" in formats:
        out[ORA] = ora_bytes(layers)
    if "psd" in formats:
        out[PSD] = layerfiles.psd_bytes(psd_stack(layers))
    return out


def write_files(files: dict[str, bytes], out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        tmp = out / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(out / name)
        paths.append(out / name)
    return paths
