"""Layered export: halo-free RGBA, OpenRaster structure, read back by a third-party reader (pyora)."""
import io
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest
from PIL import Image

from training.export.layers import FG_THRESHOLD, Layers, composite, export_files, fg_rgba, ora_bytes, write_files


@pytest.fixture
def layers():
    rng = np.random.default_rng(0)
    h, w = 40, 300  # wider than a thumbnail
    yy, xx = np.mgrid[:h, :w]
    mask = np.clip(1.2 - np.hypot(yy - 20, xx - 150) / 30, 0, 1).astype(np.float32)  # soft disc
    image = rng.integers(100, 256, (h, w, 3), dtype=np.uint8)
    fg = np.where(mask[..., None] >= FG_THRESHOLD, image, 0).astype(np.uint8)  # black fill, as in the data
    bg = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Layers(fg=fg, bg=bg, mask=mask, image=image)


def _png(data):
    return np.asarray(Image.open(io.BytesIO(data)))


def test_rgba_alpha_is_mask_and_no_dark_halo(layers):
    rgba = fg_rgba(layers)
    assert np.array_equal(rgba[..., 3], np.rint(layers.mask * 255).astype(np.uint8))
    edge = (layers.mask > 0) & (layers.mask < FG_THRESHOLD)
    assert edge.any()
    assert np.array_equal(rgba[edge][:, :3], layers.image[edge])  # colour from Î, not F̂'s black
    inside = layers.mask >= FG_THRESHOLD
    assert np.array_equal(rgba[inside][:, :3], layers.fg[inside])


def test_rgba_without_aux_image_spreads_foreground_colour(layers):
    layers.image = None
    rgba = fg_rgba(layers)
    edge = (layers.mask > 0) & (layers.mask < FG_THRESHOLD)
    assert rgba[edge][:, :3].mean() > 60  # not the black fill


def test_composite_formula(layers):
    m = layers.mask[..., None]
    want = m * layers.fg + (1 - m) * layers.bg.astype(np.float32)
    assert np.abs(composite(layers).astype(np.float32) - want).max() <= 0.5


def test_ora_structure_and_merged_image(layers):
    data = ora_bytes(layers)
    z = zipfile.ZipFile(io.BytesIO(data))
    first = z.infolist()[0]
    assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
    assert z.read("mimetype") == b"image/openraster"
    assert data[30:38] == b"mimetype" and data[38:54] == b"image/openraster"  # readable without unzip
    stack = ET.fromstring(z.read("stack.xml"))
    assert (stack.get("w"), stack.get("h")) == ("300", "40")
    order = [(e.get("name"), e.get("visibility")) for e in stack.iter("layer")]
    assert order == [("mask", "hidden"), ("foreground", "visible"), ("background", "visible")]
    fg = _png(z.read("data/foreground.png")).astype(np.float32)
    bg = _png(z.read("data/background.png")).astype(np.float32)
    a = fg[..., 3:] / 255
    by_hand = a * fg[..., :3] + (1 - a) * bg
    merged = _png(z.read("mergedimage.png")).astype(np.float32)
    assert np.abs(merged - by_hand).max() <= 1
    thumb = Image.open(io.BytesIO(z.read("Thumbnails/thumbnail.png")))
    assert max(thumb.size) <= 256


def test_pyora_reads_it_back(layers, tmp_path):
    pyora = pytest.importorskip("pyora")
    path = tmp_path / "layers.ora"
    path.write_bytes(ora_bytes(layers))
    project = pyora.Project.load(str(path))
    assert project.dimensions == (300, 40)
    names = [layer.name for layer in project.iter_layers]
    assert set(names) == {"mask", "foreground", "background"}
    fg = np.asarray(project.get_by_path("/foreground").get_image_data())
    assert np.array_equal(fg[..., 3], np.rint(layers.mask * 255).astype(np.uint8))
    assert not project.get_by_path("/mask").visible
    rendered = np.asarray(project.get_image_data(use_original=False).convert("RGB")).astype(np.int32)
    merged = _png(zipfile.ZipFile(path).read("mergedimage.png")).astype(np.int32)
    assert np.abs(rendered - merged).max() <= 1


def test_export_files_and_image_only_baseline(layers, tmp_path):
    files = export_files(layers)
    assert set(files) == {"fg.png", "bg.png", "mask.png", "image.png", "composite.png", "fg_rgba.png", "layers.ora"}
    paths = write_files(files, tmp_path / "s0")
    assert all(p.stat().st_size > 0 for p in paths)
    only = export_files(Layers(fg=None, bg=None, mask=None, image=layers.image))
    assert set(only) == {"image.png", "composite.png"}
