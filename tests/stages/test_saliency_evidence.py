"""Saliency never invents an object, and its random draws depend on the sample alone (issue 17)."""
import numpy as np
import pytest

from l2i_pipeline.core.config import load_config
from l2i_pipeline.core.sample import Sample
from l2i_pipeline.demo.saliency_cases import composed_scenes, no_object_cases
from stages.saliency import SaliencyStage

NO_OBJECT = no_object_cases()


def _run(images: dict[str, np.ndarray], seed: int = 0) -> dict[str, Sample]:
    stage = SaliencyStage(load_config(None, [f"seed={seed}"]))
    samples = [Sample(key, "u", image=img) for key, img in images.items()]
    return {s.key: s for s in stage.run(samples)}


@pytest.mark.parametrize("kind", ["flat", "gradient", "noise", "texture"])
def test_no_object_images_are_rejected_as_no_salient_object(kind):
    cases = {k: v for k, v in NO_OBJECT.items() if k.startswith(kind)}
    assert len(cases) >= 3
    for key, s in _run(cases).items():
        assert s.status == "rejected" and s.reason == "saliency:no_salient_object", (key, s.reason)


def test_real_photos_and_composed_scenes_keep_their_object():
    from skimage import data

    photos = {n: getattr(data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket")}
    scenes = composed_scenes(8)
    out = _run({**photos, **{f"scene{i}": img for i, (img, _) in enumerate(scenes)}})
    for key in photos:
        assert out[key].ok and (out[key].mask > 0.1).mean() > 0.05, key
    ious = []
    for i, (_, truth) in enumerate(scenes):
        s = out[f"scene{i}"]
        assert s.ok, (i, s.reason)
        m = s.mask > 0.1
        ious.append((m & truth).sum() / (m | truth).sum())
    assert np.mean(ious) > 0.6, ious


def test_one_sample_alone_or_in_any_batch_gets_the_same_mask():
    scenes = {f"k{i}": img for i, (img, _) in enumerate(composed_scenes(6, seed=3))}
    batch = _run(scenes)
    reversed_batch = _run(dict(reversed(list(scenes.items()))))
    for key, img in scenes.items():
        alone = _run({key: img})[key]
        assert alone.status == batch[key].status == reversed_batch[key].status
        assert np.array_equal(alone.mask, batch[key].mask) and np.array_equal(alone.mask, reversed_batch[key].mask)
