"""The bad inputs are what they claim to be, byte for byte the same on every call."""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps

from l2i_pipeline.demo.inputs import (
    OK,
    REJECTED,
    bad_inputs,
    decompression_bomb_png,
    write_files,
    write_laion_parquet,
)


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_set_is_deterministic_and_complete(bad_files):
    assert [f.data for f in bad_inputs()] == [f.data for f in bad_files]
    names = [f.filename for f in bad_files]
    assert len(set(names)) == len(names)
    assert {f.expected for f in bad_files} == {OK, REJECTED}
    assert all(f.description for f in bad_files)
    assert {"zero_byte.jpg", "html_as_image.jpg", "truncated.jpg", "decompression_bomb.png", "cmyk.jpg",
            "gray16.png", "grayscale.jpg", "palette.png", "rgba.png", "animated.gif", "exif_rotated.jpg",
            "tiny.png", "extreme_aspect.jpg", "no_object_flat_grey.png", "no_object_gradient_vertical_sky.png",
            "no_object_noise_grey_sigma20.png", "no_object_texture_gravel.png"} == set(names)


def test_undecodable_ones_fail_as_described(bad_files):
    by_name = {f.filename: f for f in bad_files}
    assert by_name["zero_byte.jpg"].data == b""
    with pytest.raises(Image.UnidentifiedImageError):
        _open(by_name["html_as_image.jpg"].data)
    truncated = _open(by_name["truncated.jpg"].data)
    assert truncated.format == "JPEG" and truncated.size == (512, 512)  # the header is fine...
    with pytest.raises(OSError, match="truncated"):
        truncated.load()  # ...the pixels are not
    bomb = by_name["decompression_bomb.png"].data
    assert len(bomb) < 2000
    with pytest.raises(Image.DecompressionBombError):
        _open(bomb)


def test_bomb_header_is_a_valid_png_claiming_the_size():
    data = decompression_bomb_png(300, 200)  # small enough to open: the structure is real PNG
    im = _open(data)
    assert (im.format, im.size, im.mode) == ("PNG", (300, 200), "L")


def test_decodable_ones_have_the_advertised_modes_and_sizes(bad_files):
    info = {}
    for f in bad_files:
        if f.expected == OK or f.filename in ("tiny.png", "extreme_aspect.jpg"):
            im = _open(f.data)
            im.load()
            info[f.filename] = (im.format, im.mode, im.size, getattr(im, "n_frames", 1))
    assert info["cmyk.jpg"] == ("JPEG", "CMYK", (600, 400), 1)
    assert info["gray16.png"][:3] == ("PNG", "I;16", (512, 512))
    assert info["grayscale.jpg"][:3] == ("JPEG", "L", (512, 512))
    assert info["palette.png"][:3] == ("PNG", "P", (451, 300))
    assert info["rgba.png"][:3] == ("PNG", "RGBA", (512, 512))
    assert info["animated.gif"][0] == "GIF" and info["animated.gif"][3] == 3
    assert min(info["tiny.png"][2]) < 64
    w, h = info["extreme_aspect.jpg"][2]
    assert w / h >= 20


def test_gray16_uses_the_full_16_bit_range(bad_files):
    gray16 = next(f for f in bad_files if f.filename == "gray16.png")
    pixels = np.asarray(_open(gray16.data))
    assert pixels.max() > 255 * 200  # a naive 8-bit convert would saturate most of it


def test_exif_rotation_is_non_square_and_transposes(bad_files):
    f = next(f for f in bad_files if f.filename == "exif_rotated.jpg")
    im = _open(f.data)
    assert im.getexif()[0x0112] == 6
    assert im.size == (451, 300)
    assert ImageOps.exif_transpose(im).size == (300, 451)


def test_photos_are_real_jpegs_with_captions(photo_files):
    assert len(photo_files) >= 3
    for f in photo_files:
        im = _open(f.data)
        assert im.format == "JPEG" and im.mode == "RGB" and min(im.size) >= 256
        assert f.expected == OK and len(f.description) > 10


def test_write_files(tmp_path, bad_files):
    paths = write_files(tmp_path / "srv", bad_files)
    assert [p.read_bytes() for p in paths] == [f.data for f in bad_files]


def test_laion_parquet_schema_and_determinism(tmp_path):
    urls = ["http://a.example/1.jpg", "http://b.example/2.png"]
    path = write_laion_parquet(tmp_path / "x" / "laion.parquet", urls, ["a cat", "a dog"], sizes=[(640, 480), None])
    table = pq.read_table(path)
    assert table.schema.names == ["URL", "TEXT", "similarity", "hash", "punsafe", "pwatermark",
                                  "AESTHETIC_SCORE", "WIDTH", "HEIGHT"]
    assert table.schema.field("hash").type == pa.int64()
    rows = table.to_pylist()
    assert rows[0]["URL"] == urls[0] and rows[1]["TEXT"] == "a dog"
    assert (rows[0]["WIDTH"], rows[0]["HEIGHT"], rows[1]["WIDTH"]) == (640, 480, None)
    assert all(0 <= r["punsafe"] <= 1 and r["AESTHETIC_SCORE"] >= 6.5 for r in rows)
    again = write_laion_parquet(tmp_path / "again.parquet", urls, ["a cat", "a dog"], sizes=[(640, 480), None])
    assert pq.read_table(again).equals(table)
    with pytest.raises(ValueError):
        write_laion_parquet(tmp_path / "bad.parquet", urls, ["only one"])
