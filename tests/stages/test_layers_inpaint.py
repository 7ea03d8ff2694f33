"""Layers and inpainting: the paper's identities F = I*[m > t] and B = I outside m~."""
import numpy as np
import pytest

from l2i_pipeline.core.sample import Sample
from l2i_pipeline.formats import mask8
from stages.config import Config, LayersConfig
from stages.inpaint import InpaintStage, paste_back
from stages.layers import count_components, dilated_mask, foreground, make_layers
from stages.saliency_classical import classical_mask


def _disc(size=128, r=30, cx=64, cy=64):
    yy, xx = np.mgrid[0:size, 0:size]
    return (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).astype(np.float32)


def test_foreground_is_image_where_mask_above_threshold():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    m = rng.random((64, 64)).astype(np.float32)
    f = foreground(img, m, 0.1)
    assert np.array_equal(f[m > 0.1], img[m > 0.1]) and (f[m <= 0.1] == 0).all()


def test_dilated_mask_contains_binary_mask_and_grows():
    m = _disc()
    d = dilated_mask(m, 0.1, kernel=7, iterations=2)
    assert set(np.unique(d)) <= {0, 255}
    assert (d[m > 0.1] == 255).all() and (d > 0).sum() > (m > 0.1).sum()


def test_area_limits_reject_with_reason():
    cfg = LayersConfig(min_area=0.05, max_area=0.9)
    img = np.zeros((128, 128, 3), np.uint8)
    for mask, reason in [(np.zeros((128, 128), np.float32), "layers:mask_empty"),
                         (_disc(r=5), "layers:mask_too_small"),
                         (np.ones((128, 128), np.float32), "layers:mask_too_large")]:
        s = Sample("k", "u", image=img, mask=mask)
        make_layers(s, cfg)
        assert s.reason == reason and s.fg is None
    s = Sample("k", "u", image=img, mask=_disc())
    make_layers(s, cfg)
    assert s.ok and s.meta["components"] == 1 and 0.15 < s.meta["mask_area"] < 0.2


def test_components_ignore_specks():
    b = _disc(r=20, cx=30, cy=30) + _disc(r=20, cx=95, cy=95)
    b[5, 120] = 1  # a 1-pixel speck is not a component
    assert count_components(b > 0) == 2


@pytest.mark.parametrize("feather", [0, 4])
def test_paste_back_keeps_original_outside_mask(feather):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    gen = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    m = (_disc(64, 15, 32, 32) * 255).astype(np.uint8)
    b = paste_back(img, gen, m, feather)
    assert np.array_equal(b[m == 0], img[m == 0])
    if feather == 0:
        assert np.array_equal(b[m > 0], gen[m > 0])
    else:
        assert np.array_equal(b[32, 32], gen[32, 32])  # deep inside: fully generated


def test_telea_stage_fills_the_hole_and_keeps_the_rest():
    img = np.full((96, 96, 3), 100, np.uint8)
    img[30:60, 30:60] = (250, 0, 0)  # the "object"
    m = np.zeros((96, 96), np.float32)
    m[30:60, 30:60] = 1
    s = Sample("k", "u", image=img, mask=m)
    make_layers(s, LayersConfig(dilate_kernel=5, dilate_iterations=1))
    InpaintStage(Config()).run([s])
    assert s.ok and np.array_equal(s.bg[s.inpaint_mask == 0], img[s.inpaint_mask == 0])
    assert abs(int(s.bg[45, 45, 0]) - 100) < 30  # the red object is gone from the background


def test_classical_saliency_finds_a_salient_disc():
    from rawshards import scene

    img = scene(3, size=160)
    m = mask8.quantize(classical_mask(img))
    assert m.shape == img.shape[:2] and m.dtype == np.float32
    h, w = m.shape
    yy, xx = np.mgrid[0:h, 0:w]
    truth = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (h / 4 - 10) ** 2
    assert m[truth].mean() > 0.8  # the disc is found ...
    assert m[:10].mean() < 0.1  # ... and the top border is background
