"""The bad-input set: image files that break naive pipelines, made deterministically in code.

Built from scikit-image's bundled photos (no download), for the demo (served by `httpserve` to
`l2i download`) and for the synthesize tests. `expected` is what the whole pipeline should do with
the file: "ok" (decoded and used, after the right conversion) or "rejected" (recorded with a reason).
"""
from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

OK, REJECTED = "ok", "rejected"


class InputFile(NamedTuple):
    filename: str
    data: bytes
    expected: str  # OK or REJECTED
    description: str


def _photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)())


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def decompression_bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A ~1 kB PNG whose header claims width x height 8-bit gray pixels (10 gigapixels by default)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 8, 9)  # 8 black rows; a decoder would allocate them all
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows)
            + _png_chunk(b"IEND", b""))


def _exif_rotated_jpeg(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: rotate 90° clockwise to display
    return _encode(_photo("chelsea"), "JPEG", quality=90, exif=exif.tobytes())


def _animated_gif() -> bytes:
    base = _photo("chelsea").resize((226, 150))
    frames = [Image.fromarray(np.roll(np.asarray(base), shift * 40, axis=1)) for shift in range(3)]
    frames = [f.convert("P", palette=Image.Palette.ADAPTIVE) for f in frames]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _rgba_png() -> bytes:
    rgb = np.asarray(_photo("astronaut"))
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1], dtype=np.uint8), (rgb.shape[0], 1))[..., None]
    return _encode(Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA"), "PNG")


def _png16() -> bytes:
    gray = np.asarray(_photo("camera")).astype(np.uint16) * 257  # full 16-bit range
    return _encode(Image.fromarray(gray), "PNG")  # mode I;16


NO_OBJECT = {  # a no-evidence kind each (l2i_pipeline/demo/saliency_cases.py): saliency must find nothing
    "flat_grey": "flat grey, no object",
    "gradient_vertical_sky": "a smooth sky-like gradient, no object",
    "noise_grey_sigma20": "grey sensor noise, no object",
    "texture_gravel": "a uniform gravel texture, no object",
}


def _no_object_files() -> list[InputFile]:
    from l2i_pipeline.demo.saliency_cases import no_object_cases

    cases = no_object_cases()
    return [InputFile(f"no_object_{name}.png", _encode(Image.fromarray(cases[name]), "PNG"), REJECTED,
                      f"{text} (200x160): rejected as saliency:no_salient_object")
            for name, text in NO_OBJECT.items()]


def bad_inputs() -> list[InputFile]:
    """Every bad input as (filename, bytes, expected, description); same bytes on every call."""
    astronaut_jpeg = _encode(_photo("astronaut"), "JPEG", quality=90)
    html = (b"<!doctype html><html><head><title>404 Not Found</title></head>"
            b"<body><h1>Not Found</h1><p>The requested image was not found.</p></body></html>\n")
    return [
        InputFile("zero_byte.jpg", b"", REJECTED, "empty body (0 bytes)"),
        InputFile("html_as_image.jpg", html, REJECTED, "an HTML error page (served as image/jpeg)"),
        InputFile("truncated.jpg", astronaut_jpeg[: len(astronaut_jpeg) // 2], REJECTED,
                  "JPEG cut in half: the header parses, decoding the pixels fails"),
        InputFile("decompression_bomb.png", decompression_bomb_png(), REJECTED,
                  "PNG header claiming 100000x100000 pixels in ~1 kB"),
        InputFile("cmyk.jpg", _encode(_photo("coffee").convert("CMYK"), "JPEG", quality=90), OK,
                  "CMYK JPEG (600x400): must be converted to RGB"),
        InputFile("gray16.png", _png16(), OK,
                  "16-bit grayscale PNG (mode I;16, 512x512): scale to 8 bits, a plain convert('RGB') clips"),
        InputFile("grayscale.jpg", _encode(_photo("camera"), "JPEG", quality=90), OK,
                  "8-bit grayscale JPEG (512x512)"),
        InputFile("palette.png", _encode(_photo("chelsea").convert("P", palette=Image.Palette.ADAPTIVE), "PNG"), OK,
                  "palette (P mode) PNG (451x300)"),
        InputFile("rgba.png", _rgba_png(), OK, "RGBA PNG (512x512), alpha ramps 0..255 left to right"),
        InputFile("animated.gif", _animated_gif(), OK, "animated GIF, 3 frames (226x150): use the first"),
        InputFile("exif_rotated.jpg", _exif_rotated_jpeg(6), OK,
                  "JPEG stored 451x300 with EXIF Orientation 6: displays as 300x451 portrait"),
        InputFile("tiny.png", _encode(_photo("astronaut").resize((48, 32)), "PNG"), REJECTED,
                  "48x32 image, under 64 px"),
        InputFile("extreme_aspect.jpg", _encode(_photo("coffee").resize((2000, 100)), "JPEG", quality=90),
                  REJECTED, "2000x100 image, aspect ratio 20:1"),
        *_no_object_files(),
    ]


PHOTOS = {
    "astronaut": "portrait of an astronaut in a white space suit holding a helmet, with an American flag",
    "coffee": "a cup of coffee with latte art on a saucer, on a wooden table",
    "chelsea": "a tabby cat named Chelsea lying down, close-up",
    "rocket": "a rocket on the launch pad under a blue sky",
    "immunohistochemistry": "microscope image of a stained tissue sample",
}


def photos() -> list[InputFile]:
    """Good inputs: scikit-image's photos as JPEG, `description` a caption usable as TEXT."""
    return [InputFile(f"{name}.jpg", _encode(_photo(name), "JPEG", quality=92), OK, caption)
            for name, caption in PHOTOS.items()]


def write_files(directory: str | Path, files: Sequence[InputFile]) -> list[Path]:
    """Write each file's bytes under `directory` (created); returns the paths in order."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in files:
        (root / f.filename).write_bytes(f.data)
        paths.append(root / f.filename)
    return paths


def _int64_hash(text: str) -> int:
    return struct.unpack(">q", hashlib.sha256(text.encode()).digest()[:8])[0]


def write_laion_parquet(path: str | Path, urls: Sequence[str], captions: Sequence[str],
                        sizes: Sequence[tuple[int, int] | None] | None = None) -> Path:
    """A LAION-Aesthetics-style parquet: URL, TEXT, similarity, hash, punsafe, pwatermark,
    AESTHETIC_SCORE, WIDTH, HEIGHT. Scores are made up but deterministic per URL (hash is an int64 of
    URL+TEXT, as in LAION); `sizes` gives (width, height) per row, null when unknown.
    """
    if len(urls) != len(captions) or (sizes is not None and len(sizes) != len(urls)):
        raise ValueError("urls, captions (and sizes) must have the same length")
    sizes = list(sizes) if sizes is not None else [None] * len(urls)
    seeds = [int.from_bytes(hashlib.sha256(u.encode()).digest()[:4], "big") for u in urls]
    rngs = [np.random.default_rng(s) for s in seeds]
    table = pa.table({
        "URL": pa.array(list(urls), pa.string()),
        "TEXT": pa.array(list(captions), pa.string()),
        "similarity": pa.array([round(float(r.uniform(0.28, 0.4)), 4) for r in rngs], pa.float64()),
        "hash": pa.array([_int64_hash(u + t) for u, t in zip(urls, captions)], pa.int64()),
        "punsafe": pa.array([round(float(r.uniform(0, 0.1)), 4) for r in rngs], pa.float64()),
        "pwatermark": pa.array([round(float(r.uniform(0, 0.5)), 4) for r in rngs], pa.float64()),
        "AESTHETIC_SCORE": pa.array([round(float(r.uniform(6.5, 7.5)), 4) for r in rngs], pa.float64()),
        "WIDTH": pa.array([s[0] if s else None for s in sizes], pa.int64()),
        "HEIGHT": pa.array([s[1] if s else None for s in sizes], pa.int64()),
    })
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return out
