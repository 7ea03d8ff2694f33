"""Saliency never invents an object, at any resolution and with any backend, and its random draws depend on
the sample alone (issues 17, 24)."""
import numpy as np
import pytest

from l2i_pipeline.core.sample import Sample
from l2i_pipeline.demo.saliency_cases import composed_scenes, no_object_cases
from stages.config import load_config
from stages.decode import resize_center_crop
from stages.saliency import SaliencyStage

NO_OBJECT = no_object_cases()
BACKENDS = ("classical", "u2netp")
_STAGES: dict = {}


def _stage(backend: str, seed: int = 0) -> SaliencyStage:
    if (backend, seed) not in _STAGES:
        _STAGES[backend, seed] = SaliencyStage(load_config(None, [f"seed={seed}", f"saliency.backend={backend}"]))
    return _STAGES[backend, seed]


def _run(images: dict[str, np.ndarray], seed: int = 0, backend: str = "classical") -> dict[str, Sample]:
    samples = [Sample(key, "u", image=img) for key, img in images.items()]
    return {s.key: s for s in _stage(backend, seed).run(samples)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [160, 256, 512])
@pytest.mark.parametrize("kind", ["flat", "gradient", "noise", "texture"])
def test_no_object_images_are_rejected_at_every_resolution(kind, size, backend):
    cases = {k: resize_center_crop(v, size) for k, v in NO_OBJECT.items() if k.startswith(kind)}
    assert len(cases) >= 3
    for key, s in _run(cases, backend=backend).items():
        assert s.status == "rejected" and s.reason == "saliency:no_salient_object", (key, size, s.reason)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_demos_no_object_files_are_rejected_at_the_default_512(backend):
    """The demo serves these as PNG; the pipeline decodes them and upsizes to 512 (issue 24: gravel was kept)."""
    from l2i_pipeline.demo.inputs import _no_object_files
    from stages.decode import DecodeStage

    cfg = load_config(None, [f"saliency.backend={backend}"])
    samples = [Sample(f.filename, "u", raw=f.data) for f in _no_object_files()]
    decoded = DecodeStage(cfg).run(samples)
    assert all(s.ok and s.image.shape == (512, 512, 3) for s in decoded)
    for s in _stage(backend).run(decoded):
        assert s.reason == "saliency:no_salient_object", (s.key, s.reason)


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_photos_and_composed_scenes_keep_their_object(backend):
    from skimage import data

    photos = {f"{n}@{size}": resize_center_crop(getattr(data, n)(), size)
              for n in ("astronaut", "coffee", "chelsea", "rocket") for size in (160, 256, 512)}
    scenes = composed_scenes(8)
    out = _run({**photos, **{f"scene{i}": img for i, (img, _) in enumerate(scenes)}}, backend=backend)
    for key in photos:
        assert out[key].ok and (out[key].mask > 0.1).mean() > 0.03, (key, out[key].reason)
    ious = []
    for i, (_, truth) in enumerate(scenes):
        s = out[f"scene{i}"]
        assert s.ok, (i, s.reason)
        m = s.mask > 0.1
        ious.append((m & truth).sum() / (m | truth).sum())
    assert np.mean(ious) > (0.6 if backend == "classical" else 0.75), ious


def test_one_sample_alone_or_in_any_batch_gets_the_same_mask():
    scenes = {f"k{i}": img for i, (img, _) in enumerate(composed_scenes(6, seed=3))}
    batch = _run(scenes)
    reversed_batch = _run(dict(reversed(list(scenes.items()))))
    for key, img in scenes.items():
        alone = _run({key: img})[key]
        assert alone.status == batch[key].status == reversed_batch[key].status
        assert np.array_equal(alone.mask, batch[key].mask) and np.array_equal(alone.mask, reversed_batch[key].mask)

