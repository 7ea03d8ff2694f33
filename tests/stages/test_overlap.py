"""layers.split=occlusion (issue 26): one salient region cut into overlapping objects, front first."""
import numpy as np
import pytest

from l2i_pipeline.demo.peel_scenes import shape_scene
from stages.config import ConfigError, LayersConfig, load_config
from stages.layers import split_for_peeling
from stages.overlap import occlusion_order, split_overlapping


def _union(objects):
    m = np.zeros(objects[0].shape, np.float32)
    for o in objects:
        m[o] = 1.0
    return m


@pytest.mark.parametrize("n", [2, 3])
def test_overlapping_shapes_split_into_their_objects_front_first(n):
    for seed in range(3):
        img, visible = shape_scene(1000 * n + 100 + seed, n, 256, overlap=True)
        mask = _union(visible)
        mask[0, :] = 0.05  # a faint fringe below the threshold goes to a piece too
        parts = split_overlapping(img, mask, 0.1, 0.01, room=4)
        assert len(parts) == n and np.array_equal(sum(parts), mask)  # the pieces add up to the mask exactly
        for k, p in enumerate(parts):  # layer k is object k, front to back
            iou = [(o & (p > 0.1)).sum() / (o | (p > 0.1)).sum() for o in visible]
            assert int(np.argmax(iou)) == k and max(iou) > 0.85, (seed, k, iou)


def test_one_flat_object_a_ring_around_it_and_a_patch_inside_are_not_split():
    img, visible = shape_scene(1100, 1, 256)
    one = _union(visible)
    assert split_overlapping(img, one, 0.1, 0.01, room=4)[0] is one
    yy, xx = np.mgrid[:256, :256]
    d = np.hypot(yy - 128, xx - 128)
    img = np.full((256, 256, 3), 120, np.uint8)
    img[d < 60] = (220, 40, 40)
    img[d < 25] = (40, 70, 220)  # a blue patch inside a red disc: a logo, not an object beside it
    disc = (d < 60).astype(np.float32)
    assert len(split_overlapping(img, disc, 0.1, 0.01, room=4)) == 1
    ring = (d < 80).astype(np.float32)  # a mask that also holds a ring of grey background around the disc
    assert len(split_overlapping(img, ring, 0.1, 0.01, room=4)) == 1


def test_the_order_follows_the_occlusion_votes_then_mass():
    a = np.zeros((100, 100), bool)
    a[30:70, 10:50] = True  # a square
    yy, xx = np.mgrid[:100, :100]
    b = (np.hypot(yy - 50, xx - 60) < 20) & ~a  # a disc behind it: a bite taken out, its hull holds a's pixels
    assert occlusion_order([b, a], [float(b.sum()), float(a.sum())]) == [1, 0]
    c = np.zeros((100, 100), bool)
    c[0:10, 0:10] = True  # far apart: no vote, so more mass first
    assert occlusion_order([c, a], [float(c.sum()), float(a.sum())]) == [1, 0]


def test_split_for_peeling_uses_it_only_with_the_setting():
    img, visible = shape_scene(2100, 2, 256, overlap=True)
    mask = _union(visible)
    first, queued = split_for_peeling(mask, LayersConfig(count=3), 2, img)
    assert first is mask and queued == []  # components: one region, one layer (the paper's rule)
    first, queued = split_for_peeling(mask, LayersConfig(count=3, split="occlusion"), 2, img)
    assert len(queued) == 1 and np.array_equal(first + queued[0].mask, mask)
    first, queued = split_for_peeling(mask, LayersConfig(count=2, split="occlusion"), 1, img)
    assert len(queued) == 1


def test_a_bad_split_setting_is_refused_before_work():
    with pytest.raises(ConfigError, match="layers.split"):
        load_config(None, ["layers.split=colour"])


def test_the_pipeline_peels_two_overlapping_objects_into_two_layers_with_the_identities():
    from l2i_pipeline.core.sample import Sample
    from l2i_pipeline.engine.runner import build_stages

    img, visible = shape_scene(2100, 2, 256, overlap=True)
    stages = build_stages(load_config(None, ["resolution=256", "saliency.backend=classical", "layers.count=3",
                                             "layers.split=occlusion"]))[1:-1]
    out = [Sample("k", "u", image=img)]
    for st in stages:
        out = st.run(out)
    s = out[0]
    assert s.ok and s.meta["depth"] == 2 and s.meta["peel"][0]["source"] == "split"
    t = 0.1
    for k, (image, m, fg, mt, bg) in enumerate([(img, s.mask, s.fg, s.inpaint_mask, s.bg),
                                                 (s.bg, s.peels[0].mask, s.peels[0].fg, s.peels[0].inpaint_mask,
                                                  s.peels[0].bg)]):
        assert np.array_equal(fg, np.where((m > t)[..., None], image, 0))  # F_k = B_{k-1} where m_k > t
        assert np.array_equal(bg[mt == 0], image[mt == 0])  # B_k = B_{k-1} outside m~_k
        iou = (visible[k] & (m > t)).sum() / (visible[k] | (m > t)).sum()
        assert iou > 0.85, (k, iou)  # layer 1 is the front object, layer 2 the one behind
