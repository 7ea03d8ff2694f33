"""Mask IOU: toy masks (empty ones included), the classical and ICON saliency references, human masks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from l2i_pipeline.models.icon.seeded import seeded_state_dict
from training.eval.iou import SaliencyIou, binarize, human_iou, iou
from training.eval.run import EvalConfig, evaluate

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "icon"


def test_iou_on_toy_masks():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert iou(a, b) == 1.0  # both empty: perfect agreement, not 0/0
    b[0, 0] = True
    assert iou(a, b) == 0.0
    a[:2] = True  # 8 pixels, b's one pixel inside
    assert iou(a, b) == pytest.approx(1 / 8)
    assert iou(a, a) == 1.0
    c = np.zeros((4, 4), bool)
    c[1:3] = True
    assert iou(a, c) == pytest.approx(4 / 12)
    with pytest.raises(ValueError, match="shapes differ"):
        iou(a, np.zeros((3, 3), bool))


def test_binarize_at_half_scale():
    assert binarize(np.array([[127, 128, 255, 0]], np.uint8)).tolist() == [[False, True, True, False]]
    assert binarize(np.array([[0.5, 0.51, 1.0]], np.float32)).tolist() == [[False, True, True]]


def test_human_masks_resized_and_unmatched_ids_ignored(tmp_path, sample_dir):
    human = tmp_path / "human"
    human.mkdir()
    ids = sorted(p.name for p in sample_dir.iterdir() if p.is_dir())
    pred = np.asarray(Image.open(sample_dir / ids[0] / "mask.png"))
    Image.fromarray(pred).save(human / f"{ids[0]}.png")  # identical: 1
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(human / f"{ids[1]}.png")  # empty vs non-empty: 0
    big = np.kron(pred, np.ones((2, 2), np.uint8))  # twice the size: resized back, still identical
    Image.fromarray(big).save(human / f"{ids[2]}.png")
    Image.fromarray(pred).save(human / "not-a-sample.png")
    got = human_iou(sample_dir, ids, human)
    assert got == {ids[0]: 1.0, ids[1]: 0.0, ids[2]: pytest.approx(1.0, abs=0.02)}


def test_classical_reference_is_labelled_not_icon(tmp_path, sample_dir):
    r = evaluate(EvalConfig(samples=str(sample_dir), out=str(tmp_path / "ev"), device="cpu"))
    s = r["metrics"]["iou_saliency"]
    assert s["icon"] is False and s["reference"] == "classical saliency (not ICON)" and s["n"] == 6
    assert 0.0 <= s["mean"] <= 1.0
    assert any("IOU (ICON): skipped, needs ICON-Res.weight" in line for line in r["skipped"])
    md = (tmp_path / "ev" / "metrics.md").read_text()
    assert f"| **ours: samples** | {s['mean']:.3f}† | – |" in md
    assert "† IOU against the classical saliency backend (not ICON)" in md


def test_icon_reference_with_seeded_weights(tmp_path, make_sample_dir):
    meta = json.loads((FIXTURES / "r.json").read_text())
    weights = tmp_path / "ICON-Res.weight"
    torch.save(seeded_state_dict({k: tuple(s) for k, s, _ in meta["keys"]}, meta["seed"]), weights)
    samples = make_sample_dir(tmp_path / "s", 1, sizes=(48,))
    torch.set_num_threads(2)
    sal = SaliencyIou(samples, str(weights), "ICON-R", device="cpu", batch_size=2)
    ids = sorted(p.name for p in samples.iterdir() if p.is_dir())
    items = [(i, (samples / i / "composite.png").read_bytes(), "") for i in ids]
    refs: list[np.ndarray] = []
    predict = sal.backend.predict
    sal.backend.predict = lambda images: refs.extend(predict(images)) or refs[-len(images):]
    got = sal(items)[:, 0]
    assert len(refs) == 1 and refs[0].shape == (48, 48)
    want = [iou(binarize(np.asarray(Image.open(samples / i / "mask.png"))), binarize(m)) for i, m in zip(ids, refs)]
    np.testing.assert_allclose(got, want)
    assert sal.label == "ICON-R" and sal.describe()["backend"] == "icon"
