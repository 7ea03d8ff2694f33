"""layers.alpha=matting (issue 26): trimap, soft alpha and F', settings, failure path."""
import numpy as np
import pytest

from l2i_pipeline.core.sample import Sample
from stages.config import ConfigError, LayersConfig, load_config
from stages.layers import make_layers
from stages.matting import UNKNOWN, soft_alpha, soft_trimap, trimap


def _scene(size=128, r=36, soft=6.0):
    """A red disc with a linear soft edge of `soft` px over a grey-green texture: I, true alpha, F, B."""
    yy, xx = np.mgrid[:size, :size]
    d = np.hypot(yy - size / 2, xx - size / 2)
    alpha = np.clip((r - d) / soft + 0.5, 0, 1).astype(np.float32)
    rng = np.random.default_rng(0)
    bg = np.dstack([40 + 30 * np.sin(xx / 5), 120 + 40 * np.cos(yy / 7), 60 + 0 * xx]).astype(np.float32)
    bg += rng.normal(0, 3, bg.shape)
    fg = np.zeros_like(bg) + [220, 40, 30]
    image = np.clip(np.rint(alpha[..., None] * fg + (1 - alpha[..., None]) * bg), 0, 255).astype(np.uint8)
    return image, alpha, fg, bg


def test_trimap_has_a_band_of_the_set_width_around_the_cut():
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1.0
    tri = trimap(mask, 0.1, 4)
    assert set(np.unique(tri)) == {0.0, UNKNOWN, 1.0}
    row = tri[32]
    assert (row[20:44] == 1).all() and (row[12:20] == UNKNOWN).all() and (row[44:52] == UNKNOWN).all()
    assert (row[:12] == 0).all() and (row[52:] == 0).all()


def test_soft_trimap_leaves_unknown_only_where_the_saliency_is_soft_within_the_band():
    import cv2

    _, true_alpha, _, _ = _scene(size=160, r=50, soft=4.0)
    saliency = cv2.GaussianBlur(true_alpha, (0, 0), 1.0)
    tri = soft_trimap(saliency, 0.1, 12)
    band = trimap(saliency, 0.1, 12) == UNKNOWN
    unknown = tri == UNKNOWN
    assert unknown.any() and not (unknown & ~band).any()  # never outside the fixed band
    assert unknown.sum() < 0.6 * band.sum()  # the sure ends of the band are left out
    soft = (saliency > 0.01) & (saliency < 0.99) & band
    assert (unknown[soft]).all()
    cut = (saliency > 0.1).astype(np.float64)
    assert (tri[~unknown] == cut[~unknown]).all()


def test_soft_trimap_widens_its_core_for_a_hard_map_and_shrinks_the_band_for_a_small_object():
    big = np.zeros((200, 200), np.float32)
    big[40:160, 40:160] = 1.0  # a hard map: no soft pixel, so the core is half the band, ±6 px
    row = soft_trimap(big, 0.1, 12)[100]
    assert (row[34:46] == UNKNOWN).all() and row[33] == 0 and row[46] == 1
    small = np.zeros((64, 64), np.float32)
    small[26:38, 26:38] = 1.0  # radius ~6.8 px: the band shrinks to 2 px and the object keeps a sure core
    tri = soft_trimap(small, 0.1, 12)
    assert (tri == 1).any() and (tri[small == 0] != 1).all()
    assert ((tri == UNKNOWN) == (trimap(small, 0.1, 2) == UNKNOWN)).all()


def test_soft_alpha_beats_the_binary_cut_in_the_band_and_keeps_the_rest():
    image, true_alpha, _, _ = _scene()
    mask = (true_alpha > 0.5).astype(np.float32)  # a saliency map that is a hard cut at the middle
    cfg = LayersConfig(alpha="matting", band=6, matting_scale=1.0)
    alpha, rgba = soft_alpha(image, mask, cfg)
    assert alpha.dtype == np.float32 and rgba.dtype == np.uint8 and rgba.shape == (128, 128, 4)
    band = trimap(mask, cfg.threshold, cfg.band) == UNKNOWN
    binary = (mask > cfg.threshold).astype(np.float32)
    err_soft = np.abs(alpha - true_alpha)[band].mean()
    err_binary = np.abs(binary - true_alpha)[band].mean()
    assert err_soft < 0.5 * err_binary, (err_soft, err_binary)
    assert np.array_equal(np.rint(alpha * 255).astype(np.uint8), rgba[..., 3])  # alpha is 8-bit exact
    assert (alpha[~band] == binary[~band]).all()  # sure regions keep the cut
    opaque = rgba[..., 3] == 255
    assert np.array_equal(rgba[..., :3][opaque & ~band], image[opaque & ~band])  # F' = I where sure
    assert np.abs(rgba[..., :3][opaque].astype(int) - image[opaque]).max() <= 1  # and where alpha is 1 in the band
    assert (rgba[..., :3][rgba[..., 3] == 0] == 0).all()


@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_reduced_scale_still_halves_the_alpha_error(scale):
    image, true_alpha, _, _ = _scene(size=160, r=50, soft=8.0)
    mask = (true_alpha > 0.5).astype(np.float32)
    cfg = LayersConfig(alpha="matting", band=8, matting_scale=scale)
    alpha, _ = soft_alpha(image, mask, cfg)
    band = trimap(mask, 0.1, 8) == UNKNOWN
    assert np.abs(alpha - true_alpha)[band].mean() < 0.5 * np.abs(mask - true_alpha)[band].mean()


def test_make_layers_adds_alpha_only_with_matting():
    image, true_alpha, _, _ = _scene()
    mask = (true_alpha > 0.5).astype(np.float32)
    s = Sample("k", "u", image=image, mask=mask)
    make_layers(s, LayersConfig())
    assert s.alpha is None and s.fg_rgba is None and "alpha" not in s.meta["layers"]
    s = Sample("k", "u", image=image, mask=mask)
    make_layers(s, LayersConfig(alpha="matting"))
    assert s.ok and s.alpha.shape == mask.shape and s.fg_rgba.shape == (128, 128, 4)
    assert s.meta["layers"]["alpha"] == "matting" and s.meta["layers"]["band"] == LayersConfig.band


def test_a_failed_solve_rejects_the_sample_with_a_reason(monkeypatch):
    import pymatting

    def no_convergence(*a, **k):
        raise ValueError("Conjugate gradient descent did not converge within 2000 iterations")

    monkeypatch.setattr(pymatting, "estimate_alpha_cf", no_convergence)
    image, true_alpha, _, _ = _scene()
    s = Sample("k", "u", image=image, mask=(true_alpha > 0.5).astype(np.float32))
    make_layers(s, LayersConfig(alpha="matting"))
    assert not s.ok and s.reason == "layers:matting_failed" and s.alpha is None and s.fg_rgba is None


@pytest.mark.parametrize("override", ["layers.alpha=soft", "layers.band=0", "layers.band=65",
                                      "layers.matting_scale=0", "layers.matting_scale=1.5",
                                      "layers.matting_scale=nan"])
def test_bad_matting_settings_are_refused_before_work(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[1]):
        load_config(None, [override])


def test_the_soft_trimap_beats_the_fixed_band_on_a_soft_saliency_map():
    import cv2

    image, true_alpha, _, _ = _scene(size=160, r=50, soft=10.0)
    saliency = np.clip(cv2.GaussianBlur(true_alpha, (0, 0), 1.5), 0, 1)
    cfg = LayersConfig(alpha="matting", band=12, matting_scale=0.5)
    band = trimap(saliency, 0.1, 12) == UNKNOWN
    sad = {name: np.abs(soft_alpha(image, saliency, cfg, fixed_band=fixed)[0] - true_alpha)[band].sum()
           for name, fixed in (("soft", False), ("fixed", True))}
    binary = np.abs((saliency > 0.1) - true_alpha)[band].sum()
    assert sad["soft"] < sad["fixed"] and sad["soft"] < 0.5 * binary, (sad, binary)
