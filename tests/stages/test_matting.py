"""layers.alpha=matting (issue 26): trimap, soft alpha and F', settings, failure path."""
import numpy as np
import pytest

from l2i_pipeline.core.config import ConfigError, LayersConfig, load_config
from l2i_pipeline.core.sample import Sample
from stages.layers import make_layers
from stages.matting import UNKNOWN, soft_alpha, trimap


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
