"""Layered export: halo-free RGBA, OpenRaster structure, read back by a third-party reader (pyora)."""
import io
import xml.etree.ElementTree as ET
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image

from training.export.layers import (
    FG_THRESHOLD,
    ZIP_TIME,
    Layers,
    composite,
    export_files,
    fg_rgba,
    ora_bytes,
    over,
    write_files,
)


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


def test_rgba_alpha_is_mask_colour_is_fg_where_opaque(layers):
    rgba = fg_rgba(layers)
    alpha = np.rint(layers.mask * 255).astype(np.uint8)
    assert np.array_equal(rgba[..., 3], alpha)
    assert np.array_equal(rgba[alpha == 255][:, :3], layers.fg[alpha == 255])


def test_rgba_without_aux_image_spreads_foreground_colour(layers):
    layers.image = None
    rgba = fg_rgba(layers)
    edge = (layers.mask > 0) & (layers.mask < FG_THRESHOLD)
    assert rgba[edge][:, :3].mean() > 60  # not the black fill


def _luminance(rgb):
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


@pytest.fixture
def blurred_edge():
    """A flat light object with a Gaussian-blurred edge (sigma 1.5 px) over a dark flat background, as the
    data holds it: Î the photo, F̂ = Î where m̂ > 0.1 else black, B̂ the background."""
    h, w = 64, 64
    yy, xx = np.mgrid[:h, :w]
    hard = (np.hypot(yy - 32, xx - 32) < 18).astype(np.float32)
    mask = np.clip(cv2.GaussianBlur(hard, (0, 0), 1.5), 0, 1)
    obj, back = np.array([210, 190, 170], np.float32), np.array([40, 50, 30], np.float32)
    image = np.rint(mask[..., None] * obj + (1 - mask[..., None]) * back).astype(np.uint8)
    fg = np.where(mask[..., None] > FG_THRESHOLD, image, 0).astype(np.uint8)
    bg = np.broadcast_to(back.astype(np.uint8), (h, w, 3)).copy()
    return Layers(fg=fg, bg=bg, mask=mask, image=image), obj


@pytest.mark.parametrize("with_image", [True, False])
def test_soft_edge_has_no_dark_halo(blurred_edge, with_image):
    layers, obj = blurred_edge
    image = layers.image
    if not with_image:
        layers.image = None  # the "no-sup" variant: F̂ stands in for Î where it is defined
    rgba = fg_rgba(layers)
    alpha = rgba[..., 3].astype(np.float32) / 255
    band = (rgba[..., 3] > 0) & (rgba[..., 3] < 255)
    assert band.sum() > 100
    drawn = over(rgba, layers.bg).astype(np.int32)
    # drawn over its own background the foreground gives back the image, across the whole soft band
    trusted = band if with_image else band & (layers.mask >= FG_THRESHOLD)
    assert np.abs(drawn[trusted] - image[trusted].astype(np.int32)).max() <= 2
    if not with_image:  # below the threshold only an estimate: still not dark
        assert np.abs(drawn[band] - image[band].astype(np.int32)).max() <= 12
    mid = band & (np.abs(layers.mask - 0.5) < 0.1)  # the middle of the edge: Î's luminance is ~125 there
    assert abs(_luminance(drawn[mid]).mean() - _luminance(image[mid]).mean()) < 2
    # and its colour is the object's own, so it also sits right on any other background
    solid = band & (alpha > 0.25)
    assert np.abs(rgba[solid][:, :3].astype(np.float32) - obj).max() <= 4


def test_composite_png_and_ora_merged_image(blurred_edge):
    """composite.png is the paper's Ĉ; mergedimage.png is what the stored layers draw (Î across the band);
    the two agree wherever the mask is 0 or 1."""
    layers, _ = blurred_edge
    files = export_files(layers)
    comp = _png(files["composite.png"]).astype(np.int32)
    assert np.array_equal(comp, composite(layers))
    merged = _png(zipfile.ZipFile(io.BytesIO(files["layers.ora"])).read("mergedimage.png")).astype(np.int32)
    alpha = np.rint(layers.mask * 255)
    hard = (alpha == 0) | (alpha == 255)
    assert np.abs(merged[hard] - comp[hard]).max() <= 1
    band = ~hard
    assert np.abs(merged[band] - layers.image[band].astype(np.int32)).max() <= 2


def test_ora_bytes_do_not_depend_on_the_clock(layers, monkeypatch):
    import time

    first = export_files(layers)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3 * 86400 + 7)  # a resumed run, days later
    again = export_files(layers)
    assert again == first  # every file, the .ora included, byte for byte
    infos = zipfile.ZipFile(io.BytesIO(first["layers.ora"])).infolist()
    assert {i.date_time for i in infos} == {ZIP_TIME}


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


def test_psd_on_request_holds_the_ora_layers_and_merged_image(layers):
    from psd_tools import PSDImage

    assert "layers.psd" not in export_files(layers)  # the default formats are unchanged
    files = export_files(layers, ("ora", "psd"))
    psd = PSDImage.open(io.BytesIO(files["layers.psd"]))
    assert [(x.name, x.visible) for x in reversed(list(psd))] == [
        ("mask", False), ("image", False), ("foreground", True), ("background", True)]
    merged = _png(zipfile.ZipFile(io.BytesIO(files["layers.ora"])).read("mergedimage.png")).astype(int)
    assert np.abs(np.asarray(psd.composite())[..., :3].astype(int) - merged).max() <= 1
