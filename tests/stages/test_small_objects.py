"""Issue 25 item 18: the smallest object the classical backend keeps, as the README states it:
a disc under ~10% of the short side (under ~1% of the image) finds no mask (`saliency:no_salient_object`);
from ~12% of the side it is found, with a mask over `layers.min_area` (1%)."""
import cv2
import numpy as np
import pytest

from l2i_pipeline.core.sample import Sample
from stages.config import load_config
from stages.layers import LayersStage
from stages.saliency import SaliencyStage


def _disc(size: int, frac: float) -> np.ndarray:
    img = np.full((size, size, 3), 120, np.uint8)
    cv2.circle(img, (size // 2, size // 2), int(size * frac) // 2, (200, 40, 40), -1)
    return img


@pytest.mark.parametrize("frac, reason", [(0.06, "saliency:no_salient_object"), (0.09, "saliency:no_salient_object"),
                                          (0.16, None)])
def test_the_smallest_object_kept(frac, reason):
    cfg = load_config(None, ["resolution=512", "saliency.backend=classical"])
    samples = [Sample("k", "u", image=_disc(512, frac))]
    samples = LayersStage(cfg).run(SaliencyStage(cfg).run(samples))
    assert samples[0].reason == reason
    if reason is None:
        assert float((samples[0].mask > cfg.layers.threshold).mean()) >= cfg.layers.min_area
