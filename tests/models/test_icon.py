"""ICON fidelity against the official implementation, on seeded weights (tests/fixtures/icon/README.md).

Each variant's official key set must load strictly through `load_icon`, and its outputs must match the
official network's pred4 logits within 1e-3: ICON-R and ICON-P on a 128x128 input through `forward`
(their backbones take any size), ICON-S (Swin, fixed at 384) end to end through `IconSaliency` on an
odd-sized image, covering BGR order, normalisation, cv2 resize and the final upsampling. ICON-R is also
checked end to end through the stage backend (test_icon_backend.py).
"""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from l2i_pipeline.models.icon import ICON, IconSaliency, IconWeightsError, load_icon, preprocess
from l2i_pipeline.models.icon.backbones import SWIN_DERIVED
from l2i_pipeline.models.icon.seeded import seeded_tensor

VARIANTS = ["ICON-R", "ICON-S", "ICON-P"]
TOL = 1e-3


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.mark.parametrize("variant", VARIANTS)
def test_key_set_and_shapes_match_official(variant, icon_ref):
    official = icon_ref.official_shapes(variant)
    with torch.device("meta"):
        model = ICON(variant)
    ours = {model.official_key(k): tuple(v.shape) for k, v in model.state_dict().items()}
    derived = {k for k in official if SWIN_DERIVED.match(k)}
    assert bool(derived) == (variant == "ICON-S")
    assert set(ours) == set(official) - derived
    assert {k: official[k] for k in ours} == ours


@pytest.mark.parametrize("variant", VARIANTS)
def test_seeded_weights_are_the_reference_ones(variant, icon_ref):
    """Guards the fixture: the generator must still give the values the reference run used."""
    meta = icon_ref.meta(variant)
    shapes = icon_ref.official_shapes(variant)
    for key, total in meta["weight_probe"].items():
        got = float(seeded_tensor(key, shapes[key], meta["seed"]).double().sum())
        assert got == pytest.approx(total, rel=1e-9, abs=1e-9), key


@pytest.mark.parametrize("variant", ["ICON-R", "ICON-P"])
def test_forward_matches_official_logits(variant, icon_ref):
    meta, ref = icon_ref.meta(variant), icon_ref.arrays(variant)
    model = load_icon(variant, icon_ref.official_weights(variant))
    size = meta["net"]["size"]
    x = torch.from_numpy(preprocess(icon_ref.random_rgb(meta["net"]["image_seed"], size, size), size))[None]
    with torch.inference_mode():
        logits = model(x)
    assert logits.shape == (1, 1, size, size)
    diff = np.abs(logits[0, 0].numpy() - ref["net_logits"]).max()
    print(f"{variant} forward max abs logit diff {diff:.2e}")
    assert diff <= TOL
    assert ref["net_logits"].std() > 0.05  # the reference is not a flat map


@pytest.mark.parametrize("variant", ["ICON-S"])  # ICON-R end to end: test_icon_backend.py
def test_icon_saliency_matches_official_end_to_end(variant, icon_ref):
    meta, ref = icon_ref.meta(variant), icon_ref.arrays(variant)
    sal = IconSaliency(variant, icon_ref.official_weights(variant), device="cpu", batch_size=4)
    assert sal.size == meta["input_size"]
    cases = meta["e2e"]
    images = [icon_ref.random_rgb(c["image_seed"], *c["shape"]) for c in cases]
    logits = sal.predict_logits(images)  # one batch of differently sized images
    for i, (case, got) in enumerate(zip(cases, logits)):
        assert got.shape == tuple(case["shape"]) and got.dtype == np.float32
        s = case["stride"]
        diff = np.abs(got[::s, ::s] - ref[f"e2e{i}_logits"]).max()
        print(f"{variant} end-to-end {case['shape']} max abs logit diff {diff:.2e}")
        assert diff <= TOL
        assert got.mean() == pytest.approx(case["mean"], abs=TOL)
        assert got.min() == pytest.approx(case["min"], abs=TOL) and got.max() == pytest.approx(case["max"], abs=TOL)


def test_preprocess_is_bgr_normalised_then_resized():
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red
    x = preprocess(rgb, 8)
    assert x.shape == (3, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x[2], (200 - 102.94) / 57.50, rtol=1e-6)  # red lands in the last (R of BGR)
    np.testing.assert_allclose(x[0], (0 - 124.55) / 56.77, rtol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(rgb.astype(np.float32), 8)


def test_partial_or_wrong_checkpoint_names_keys(icon_ref):
    good = icon_ref.official_weights("ICON-R")
    bad = dict(good)
    del bad["pwv.emrouting.W"], bad["encoder.layer4.2.bn3.running_var"]
    bad["encoder.fc.weight"] = torch.zeros(1000, 2048)
    with pytest.raises(IconWeightsError) as e:
        load_icon("ICON-R", bad)
    msg = str(e.value)
    assert "missing 2 keys" in msg and "pwv.emrouting.W" in msg and "encoder.layer4.2.bn3.running_var" in msg
    assert "unexpected 1 keys: encoder.fc.weight" in msg and "ICON-Res.weight" in msg
    with pytest.raises(IconWeightsError, match=r"wrong shapes: predtrans4.weight \(1, 64, 1, 1\)"):
        load_icon("ICON-R", {**good, "predtrans4.weight": torch.zeros(1, 64, 1, 1)})
    with pytest.raises(IconWeightsError, match="missing"):  # another variant's file
        load_icon("ICON-P", good)


def test_loads_files_safely_and_strips_dataparallel_prefix(tmp_path, icon_ref):
    good = icon_ref.official_weights("ICON-R")
    path = tmp_path / "ICON-Res.weight"
    torch.save({f"module.{k}": v for k, v in good.items()}, path)
    model = load_icon("ICON-R", path)
    assert torch.equal(model.pwv.emrouting.W, good["pwv.emrouting.W"])
    assert torch.equal(model.encoder.net.layer1[0].conv1.weight, good["encoder.layer1.0.conv1.weight"])

    evil = tmp_path / "evil.weight"
    torch.save({"x": argparse.Namespace(payload=1)}, evil)  # arbitrary objects must not be unpickled
    with pytest.raises(IconWeightsError, match="weights_only"):
        load_icon("ICON-R", evil)
    with pytest.raises(FileNotFoundError, match="drive.google.com"):
        load_icon("ICON-R", tmp_path / "absent.weight")
    with pytest.raises(ValueError, match="unknown ICON variant"):
        load_icon("ICON-X", good)


def test_em_routing_runs_in_fp32_under_autocast():
    from l2i_pipeline.models.icon.decoder import EmRouting2d

    torch.manual_seed(0)
    em = EmRouting2d()
    a, pose = torch.rand(2, 8, 6, 6), torch.randn(2, 128, 6, 6)
    ref_a, ref_pose = em(a, pose)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got_a, got_pose = em(a.bfloat16(), pose.bfloat16())
    assert got_pose.dtype == torch.float32 and got_pose.shape == (2, 128, 3, 3) and got_a.shape == (2, 8, 3, 3)
    assert torch.isfinite(got_pose).all()
    assert (got_pose - ref_pose).abs().max() < 0.05  # only the bf16 rounding of the inputs differs


def test_em_routing_matches_official(icon_ref):
    """EM routing alone (its activations are not used downstream, so check them here, tightly)."""
    from l2i_pipeline.models.icon.decoder import EmRouting2d

    em = EmRouting2d()
    em.load_state_dict({k: seeded_tensor(f"pwv.emrouting.{k}", tuple(v.shape), 0) for k, v in em.state_dict().items()})
    rs = np.random.RandomState(2024)  # the reference run's inputs
    a = torch.from_numpy(1 / (1 + np.exp(-rs.randn(1, 8, 10, 10)))).float()
    pose = torch.from_numpy(rs.randn(1, 128, 10, 10)).float()
    with torch.inference_mode():
        a_out, pose_out = em(a, pose)
    ref = icon_ref.em_arrays()
    assert a_out.shape == (1, 8, 5, 5) and pose_out.shape == (1, 128, 5, 5)
    assert np.abs(a_out.numpy() - ref["a_out"]).max() < 1e-6
    assert np.abs(pose_out.numpy() - ref["pose_out"]).max() < 1e-6
