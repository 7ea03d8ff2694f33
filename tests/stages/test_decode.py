"""Decode: every bad input becomes a reason; odd-but-valid images are normalised to RGB."""
import io

import numpy as np
import pytest
from PIL import Image

from l2i_pipeline.core.sample import Sample
from l2i_pipeline.demo.inputs import OK, bad_inputs
from stages.config import Config, DecodeConfig
from stages.decode import DecodeStage, Rejected, decode_image, resize_center_crop

EXPECTED_REASON = {
    "zero_byte.jpg": "decode:empty",
    "html_as_image.jpg": "decode:html",
    "truncated.jpg": "decode:truncated",
    "decompression_bomb.png": "decode:too_many_pixels",
    "tiny.png": "decode:too_small",
    "extreme_aspect.jpg": "decode:aspect_ratio",
}
BAD = {f.filename: f for f in bad_inputs()}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_inputs_are_rejected_with_their_reason_or_normalised(name):
    f = BAD[name]
    if f.expected == OK or name.startswith("no_object_"):  # no-object images decode; saliency rejects them
        rgb, info = decode_image(f.data, DecodeConfig(), 512)
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        assert min(rgb.shape[:2]) >= 64
    else:
        with pytest.raises(Rejected) as e:
            decode_image(f.data, DecodeConfig(), 512)
        assert str(e.value) == EXPECTED_REASON[name]


def test_exif_rotation_is_applied():
    rgb, info = decode_image(BAD["exif_rotated.jpg"].data, DecodeConfig(), 512)
    assert info["orig_width"] == 451 and info["orig_height"] == 300  # as stored
    assert rgb.shape[:2] == (451, 300)  # as displayed: portrait
    assert info["exif_orientation"] == 6


def test_16bit_png_is_scaled_not_clipped():
    rgb, _ = decode_image(BAD["gray16.png"].data, DecodeConfig(), 512)
    assert rgb.max() > 200 and rgb.min() < 50 and (rgb == 255).mean() < 0.2


def test_rgba_composited_on_white_and_cmyk_converted():
    rgba, _ = decode_image(BAD["rgba.png"].data, DecodeConfig(), 512)
    assert (rgba[:, 0] > 250).all()  # alpha 0 at the left edge -> white
    cmyk, _ = decode_image(BAD["cmyk.jpg"].data, DecodeConfig(), 512)
    assert cmyk.shape == (400, 600, 3) and 40 < cmyk.mean() < 220


def test_bomb_refused_before_decoding_pixels():
    # the limit check happens from the header: a 10-gigapixel claim is refused in milliseconds
    cfg = DecodeConfig(max_pixels=10_000)
    with pytest.raises(Rejected, match="too_many_pixels"):
        decode_image(BAD["grayscale.jpg"].data, cfg, 512)


def test_resize_center_crop_shapes():
    img = np.zeros((300, 451, 3), np.uint8)
    img[:, 215:236] = 255
    out = resize_center_crop(img, 128)
    assert out.shape == (128, 128, 3)
    assert out[:, 62:66].max() > 100  # the centre column survives the crop


def test_stage_rejects_without_raising_and_keeps_jpeg_bytes_in_sync():
    samples = [Sample(f"k{i}", "u", raw=f.data) for i, f in enumerate(bad_inputs())]
    out = DecodeStage(Config(resolution=96)).run(samples)
    assert len(out) == len(samples)
    for s, f in zip(out, bad_inputs()):
        assert s.ok == (f.expected == OK or f.filename.startswith("no_object_")), (f.filename, s.reason)
        if s.ok:
            assert s.image.shape == (96, 96, 3) and s.raw is None
            decoded = np.asarray(Image.open(io.BytesIO(s.members["jpg"])).convert("RGB"))
            assert np.array_equal(decoded, s.image)  # stored jpg decodes exactly to I
