"""The PNG members decode to exactly the arrays (any encoder is fine, the pixels are not), and backends given
by import path are checked against the protocol before any work."""
import io
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from l2i_pipeline.core.sample import Sample
from stages.config import ConfigError, load_config
from stages.encode import encode_members
from stages.layers import foreground
from stages.registry import inpaint_backend, saliency_backend

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def _photo(seed: int, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    smooth = np.stack([xx * 2, yy * 2, (xx + yy)], 2) + rng.normal(0, 3, (size, size, 3))
    return np.clip(smooth, 0, 255).astype(np.uint8)


def test_png_members_decode_to_the_same_pixels_as_before():
    image = _photo(0)
    mask = np.zeros(image.shape[:2], np.float32)
    mask[20:70, 30:80] = np.linspace(0.2, 1.0, 50)[None, :]
    inpaint_mask = ((mask > 0.1) * 255).astype(np.uint8)
    s = Sample(key="k", unit="u", image=image, mask=mask, inpaint_mask=inpaint_mask,
               fg=foreground(image, mask, 0.1), bg=_photo(1), members={"jpg": b"j"})
    arrays = {"fg.png": s.fg, "mask.png": np.round(mask * 255).astype(np.uint8), "inpaint_mask.png": inpaint_mask,
              "bg.png": s.bg}
    before = {}  # the previous encoder: OpenCV, zlib level 3
    for name, a in arrays.items():
        img = cv2.cvtColor(a, cv2.COLOR_RGB2BGR) if a.ndim == 3 else a
        before[name] = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])[1].tobytes()
    encode_members(s)
    for name, a in arrays.items():
        now, old = (np.asarray(Image.open(io.BytesIO(b))) for b in (s.members[name], before[name]))
        assert now.dtype == np.uint8 and np.array_equal(now, a) and np.array_equal(now, old), name


def test_foreground_keeps_the_image_where_the_mask_is_above_threshold():
    image, mask = _photo(2), np.random.default_rng(3).random((96, 96)).astype(np.float32)
    assert np.array_equal(foreground(image, mask, 0.4), np.where((mask > 0.4)[..., None], image, 0))


def test_backends_by_import_path():
    cfg = load_config(None, ["saliency.backend=sim_backends:SimSaliency", "inpaint.backend=sim_backends:SimInpainter"])
    assert saliency_backend(cfg).uses_gpu and inpaint_backend(cfg).uses_gpu


@pytest.mark.parametrize("path, message", [
    ("no_such_module_xyz:Thing", "is not available: ModuleNotFoundError"),
    ("sim_backends:NoSuchClass", "is not available: AttributeError"),
    ("sim_backends:SimGpu", "does not implement the saliency backend protocol.*missing check, setup, predict"),
    ("sim_backends:SimInpainter", "missing predict"),
    ("unknown", "unknown saliency.backend 'unknown'.*import path"),
])
def test_a_bad_backend_path_is_one_config_error(path, message):
    with pytest.raises(ConfigError, match=message):
        saliency_backend(load_config(None, [f"saliency.backend={path}"]))


def test_a_bad_backend_fails_synthesize_before_any_work(tmp_path, raw_dir):
    from l2i_pipeline.engine.synthesize import synthesize

    with pytest.raises(ConfigError, match="inpaint.backend 'sim_backends:SimSaliency' does not implement"):
        synthesize(raw_dir, tmp_path / "out", load_config(None, ["inpaint.backend=sim_backends:SimSaliency"]),
                   runner="local")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
