"""Layered files a designer opens: .psd (psd-tools), .ora (OpenRaster) and per-layer PNGs, from one stack.

A stack is a list of `Layer`s, top first (as a layers panel lists them): named RGBA or RGB uint8 arrays of
one size with straight (not premultiplied) alpha, each visible or hidden. The composite of the visible
layers is "source over" from the bottom up; the .psd stores it as its merged image, the .ora as
mergedimage.png, and the png export as composite.png. Every writer is deterministic: the same stack gives
the same bytes (no clock in the files), so an export can be checked by digest.

Used by `l2i export` (l2i_pipeline/commands/export.py) and `l2i sample --format psd` (training/export/layers.py).
"""
from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image

from l2i_pipeline.formats.names import COMPOSITE

ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date, for every .ora entry
FORMATS = ("psd", "ora", "png")


@dataclass
class Layer:
    name: str
    pixels: np.ndarray  # uint8 HxWx4 (straight alpha) or HxWx3 (opaque) or HxW (opaque gray, e.g. a mask)
    visible: bool = True

    def rgba(self) -> np.ndarray:
        p = self.pixels
        if p.ndim == 2:
            p = np.repeat(p[..., None], 3, 2)
        if p.shape[2] == 3:
            p = np.dstack([p, np.full(p.shape[:2], 255, np.uint8)])
        return p


def check_stack(stack: list[Layer]) -> tuple[int, int]:
    """(h, w); ValueError for an empty stack, mixed sizes or a non-uint8 layer."""
    if not stack:
        raise ValueError("an empty layer stack")
    h, w = stack[0].pixels.shape[:2]
    for layer in stack:
        p = layer.pixels
        if p.dtype != np.uint8 or p.shape[:2] != (h, w) or (p.ndim == 3 and p.shape[2] not in (3, 4)):
            raise ValueError(f"layer {layer.name!r}: {p.dtype} {p.shape}, expected uint8 {h}x{w}[x3|x4]")
    return h, w


def composite(stack: list[Layer]) -> np.ndarray:
    """uint8 HxWx3: the visible layers drawn bottom-up with straight-alpha source-over on black."""
    h, w = check_stack(stack)
    out = np.zeros((h, w, 3), np.float32)
    for layer in reversed(stack):
        if layer.visible:
            p = layer.rgba().astype(np.float32)
            a = p[..., 3:4] / 255
            out = a * p[..., :3] + (1 - a) * out
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def psd_bytes(stack: list[Layer]) -> bytes:
    """Photoshop .psd (8-bit RGB) with one pixel layer per stack entry, hidden ones hidden; psd-tools
    writes the merged image from the visible layers when it saves."""
    from psd_tools import PSDImage

    h, w = check_stack(stack)
    psd = PSDImage.new("RGB", (w, h))
    for layer in reversed(stack):  # psd-tools appends bottom-up
        px = layer.pixels if layer.pixels.ndim == 3 else np.repeat(layer.pixels[..., None], 3, 2)
        created = psd.create_pixel_layer_from_array(np.ascontiguousarray(px), name=layer.name)
        created.visible = layer.visible
    buf = io.BytesIO()
    psd.save(buf)
    return buf.getvalue()


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def ora_bytes(stack: list[Layer]) -> bytes:
    """OpenRaster: `mimetype` first and stored, stack.xml (top layer first), data/*.png, merged, thumbnail."""
    h, w = check_stack(stack)
    merged = png_bytes(composite(stack))
    xml = ["<?xml version='1.0' encoding='UTF-8'?>", f'<image version="0.0.5" w="{w}" h="{h}">', "<stack>"]
    entries = [("mimetype", b"image/openraster", zipfile.ZIP_STORED)]
    files = []
    for i, layer in enumerate(stack):
        src = f"data/{i:02d}_{_slug(layer.name)}.png"
        vis = "visible" if layer.visible else "hidden"
        xml.append(f'<layer name={quoteattr(layer.name)} src="{src}" visibility="{vis}" x="0" y="0" '
                   'opacity="1.000" composite-op="svg:src-over" />')
        files.append((src, png_bytes(layer.pixels), zipfile.ZIP_STORED))  # PNGs are compressed already
    xml += ["</stack>", "</image>"]
    thumb = Image.fromarray(composite(stack))
    thumb.thumbnail((256, 256))
    entries += [("stack.xml", "\n".join(xml).encode(), zipfile.ZIP_DEFLATED), *files,
                ("mergedimage.png", merged, zipfile.ZIP_STORED),
                ("Thumbnails/thumbnail.png", png_bytes(np.asarray(thumb)), zipfile.ZIP_STORED)]
    return zip_bytes(entries)


def zip_bytes(entries: list[tuple[str, bytes, int]]) -> bytes:
    """A zip of (name, data, compress_type) in that order, the same bytes on every run (fixed dates, modes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, method in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)  # not the clock: a rerun writes the same bytes
            info.compress_type, info.create_system, info.external_attr = method, 3, 0o644 << 16
            z.writestr(info, data)
    return buf.getvalue()


def png_files(stack: list[Layer]) -> dict[str, bytes]:
    """{NN_name.png: bytes} per layer, numbered top first (hidden ones too), and composite.png."""
    check_stack(stack)
    out = {f"{i:02d}_{_slug(layer.name)}.png": png_bytes(layer.pixels) for i, layer in enumerate(stack)}
    out[COMPOSITE] = png_bytes(composite(stack))
    return out


def layered_files(stack: list[Layer], fmt: str, stem: str) -> dict[str, bytes]:
    """{relative path: bytes} for one sample in one format: STEM.psd, STEM.ora or STEM/NN_name.png."""
    if fmt == "psd":
        return {f"{stem}.psd": psd_bytes(stack)}
    if fmt == "ora":
        return {f"{stem}.ora": ora_bytes(stack)}
    if fmt == "png":
        return {f"{stem}/{name}": data for name, data in png_files(stack).items()}
    raise ValueError(f"unknown layered format {fmt!r}: allowed {', '.join(FORMATS)}")
