"""Peeling (issue 26): layers.count > 1 splits separate objects into layers, peels the next layer from each
background, stops early with a recorded reason, and keeps the per-layer identities."""
import json

import numpy as np
import pytest

from l2i_pipeline.core.sample import Sample
from l2i_pipeline.demo.peel_scenes import shape_scene as scene
from l2i_pipeline.engine.runner import build_stages
from l2i_pipeline.formats.decode import composite, depth_of, read_layers
from stages.config import ConfigError, load_config
from stages.layers import split_components
from stages.peel import PeelStage

CFG = ["resolution=256", "saliency.backend=classical", "layers.count=3"]


def _run(img: np.ndarray, sets: list[str], encode: bool = False) -> Sample:
    stages = build_stages(load_config(None, sets))[1:]  # decode is skipped: the image is given
    out = [Sample("k", "u", image=img, members={"jpg": b""})]
    for st in stages if encode else stages[:-1]:
        out = st.run(out)
    return out[0]


def _disc(size, r, cx, cy, value=1.0):
    yy, xx = np.mgrid[0:size, 0:size]
    return np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, value, 0).astype(np.float32)


def test_split_orders_by_saliency_mass_and_partitions_the_mask():
    m = _disc(128, 20, 30, 30, 0.9) + _disc(128, 25, 95, 95, 0.5) + _disc(128, 3, 60, 10, 0.8)  # + a speck
    m[0, :] = 0.05  # a faint fringe below the threshold
    parts = split_components(m, 0.1, 0.01)
    assert len(parts) == 2 and np.allclose(sum(parts), m)  # every pixel goes to one object
    assert parts[0][30, 30] == np.float32(0.9) and parts[1][95, 95] == np.float32(0.5)  # 0.9*1257 > 0.5*1963
    assert parts[0][10, 60] == np.float32(0.8)  # the speck goes with its nearest object
    one = _disc(64, 10, 32, 32)
    assert split_components(one, 0.1, 0.01)[0] is one


def test_two_apart_objects_give_depth_two_with_per_layer_identities():
    img, visible = scene(3, 2)
    s = _run(img, CFG)
    assert s.ok and s.meta["depth"] == 2
    assert s.meta["peel"][0]["source"] == "split" and s.meta["peel"][-1] == {
        "layer": 3, "stopped": "saliency:no_salient_object"}
    t = 0.1
    layers = [(img, s.mask, s.fg, s.inpaint_mask, s.bg)] + [
        (prev, p.mask, p.fg, p.inpaint_mask, p.bg) for prev, p in zip([s.bg] + [p.bg for p in s.peels], s.peels)]
    for image, m, fg, mt, bg in layers:
        assert np.array_equal(fg, np.where((m > t)[..., None], image, 0))  # F_k = B_{k-1} where m_k > t
        assert np.array_equal(bg[mt == 0], image[mt == 0])  # B_k = B_{k-1} outside m~_k
        assert (mt[m > t] == 255).all()
    # each layer is one of the objects (most saliency first), and the two are different
    iou = [[(a & (lay[1] > t)).sum() / (a | (lay[1] > t)).sum() for a in visible] for lay in layers]
    assert sorted(max(r) for r in iou)[0] > 0.8 and np.argmax(iou[0]) != np.argmax(iou[1])


def test_members_round_trip_through_the_generic_reader_and_composite_back_to_the_image():
    img, _ = scene(5, 2)
    s = _run(img, CFG, encode=True)
    members = s.members
    assert {"l2.fg.png", "l2.mask.png", "l2.inpaint_mask.png", "l2.bg.png"} <= set(members)
    assert not any(n.startswith("l3.") for n in members)
    assert depth_of(members) == 2 and json.loads(members["json"])["depth"] == 2
    layers = read_layers(members)
    assert len(layers) == 2 and layers[1].meta["layer"] == 2
    rings = np.zeros(img.shape[:2], bool)
    for layer in layers:
        rings |= (layer.inpaint_mask > 0) & (layer.mask < 1)  # inpainted, not wholly covered by the layer
    assert rings.mean() < 0.2
    back = composite(layers)
    # outside the inpainted rings every layer over the deepest background gives I back (m is 8-bit)
    assert np.abs(back[~rings].astype(int) - img[~rings].astype(int)).max() <= 1


def test_one_object_stops_with_the_reason_and_keeps_layer_one():
    img, _ = scene(1, 1)
    s = _run(img, CFG)
    assert s.ok and s.meta["depth"] == 1 and s.peels == []
    assert s.meta["peel"] == [{"layer": 2, "stopped": "saliency:no_salient_object"}]


def test_failure_midway_keeps_the_layers_done_with_the_reason():
    img, _ = scene(7, 3)
    s = _run(img, CFG + ["inpaint.backend=toybackends:FailsOnLayer3"])
    assert s.ok and s.meta["depth"] == 2 and len(s.peels) == 2 - 1
    assert s.meta["peel"][-1] == {"layer": 3, "stopped": "inpaint:error:RuntimeError"}


def test_count_one_has_no_peel_stage_and_no_depth_keys():
    stages = build_stages(load_config(None, ["saliency.backend=classical"]))
    assert not any(isinstance(st, PeelStage) for st in stages)
    s = _run(scene(3, 2)[0], ["resolution=256", "saliency.backend=classical"], encode=True)
    meta = json.loads(s.members["json"])
    assert "depth" not in meta and "peel" not in meta and not any(n.startswith("l2.") for n in s.members)


def test_the_peel_stage_shares_the_pipeline_models():
    stages = build_stages(load_config(None, CFG))
    peel = next(st for st in stages if isinstance(st, PeelStage))
    assert peel.saliency is stages[1] and peel.inpaint is stages[3]


@pytest.mark.parametrize("item", ["layers.count=0", "layers.count=5", "layers.min_component_area=-0.1",
                                  "layers.min_component_area=1.5", "layers.max_inpainted_share=2"])
def test_new_settings_are_range_checked(item):
    with pytest.raises(ConfigError, match=item.split("=")[0]):
        load_config(None, [item])


def test_in_a_device_actor_the_peel_stage_uses_the_actors_models_and_builds_the_others(tmp_path):
    from l2i_pipeline.core.storage import open_store
    from l2i_pipeline.engine.runner import DeviceActor

    cfg = load_config(None, CFG + ["inpaint.backend=toybackends:GpuMedianInpainter"])
    stages = build_stages(cfg)
    first = next(i for i, st in enumerate(stages) if st.resources.num_actors != 0)
    assert type(stages[first]).__name__ == "InpaintStage"  # classical saliency runs as tasks before it
    actor = DeviceActor(cfg, tuple(type(st) for st in stages[first:]), open_store(tmp_path))
    peel = next(st for st in actor.stages if isinstance(st, PeelStage))
    assert peel.inpaint is actor.stages[0] and peel.saliency.ready  # its own saliency, set up


def test_an_unexpected_error_ends_that_samples_peeling_only(monkeypatch):
    import stages.peel as peel
    from l2i_pipeline.demo.peel_scenes import photo_scene

    def boom(binary):
        raise MemoryError("a test's failure")

    monkeypatch.setattr(peel, "count_components", boom)  # runs after each new saliency pass on a background
    cfg = load_config(None, CFG)
    busy = photo_scene(1001, 1, 256)[0]  # classical finds more on its background after layer 1
    samples = [Sample("a", "u", image=busy), Sample("b", "u", image=scene(3, 2)[0])]
    for st in build_stages(cfg)[1:4]:
        samples = st.run(samples)
    samples = PeelStage(cfg).run(samples)
    assert [s.status for s in samples] == ["ok", "ok"] and [s.meta["depth"] for s in samples] == [1, 2]
    assert samples[0].meta["peel"] == [{"layer": 2, "stopped": "peel:error:MemoryError"}]
    assert samples[1].meta["peel"][0]["source"] == "split"  # the other sample of the batch peels on


def test_a_pass_that_finds_the_inpaintings_ghost_stops_peeling():
    import cv2

    from l2i_pipeline.demo.peel_scenes import background

    img = background(np.random.default_rng(0), 256)
    cv2.circle(img, (128, 128), 51, (220, 40, 40), -1)  # where CentreDisc looks, on every layer
    sets = ["resolution=256", "saliency.backend=toybackends:CentreDisc", "layers.count=2"]
    s = _run(img, sets + ["inpaint.backend=toybackends:GhostInpainter"])
    assert s.ok and s.meta["depth"] == 1, s.meta["peel"]
    assert s.meta["peel"] == [{"layer": 2, "stopped": "peel:mostly_inpainted"}]
    s = _run(img, sets + ["inpaint.backend=toybackends:GhostInpainter", "layers.max_inpainted_share=1"])
    assert s.meta["depth"] == 2  # allowed: the ghost becomes a layer
