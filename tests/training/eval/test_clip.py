"""CLIP score: the raw cosine of projected image and text embeddings, by hand, on a tiny saved CLIPModel."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from training.eval.clip_score import ClipScorer
from training.eval.run import EvalConfig, dataset_only, evaluate


def _by_hand(path, images, texts) -> np.ndarray:
    model = CLIPModel.from_pretrained(path).eval()
    proc = CLIPProcessor.from_pretrained(path)
    with torch.no_grad():
        px = proc(images=[Image.fromarray(i) for i in images], return_tensors="pt")["pixel_values"]
        img = model.visual_projection(model.vision_model(pixel_values=px).pooler_output)
        tok = proc(text=texts, padding=True, return_tensors="pt")
        txt = model.text_projection(model.text_model(input_ids=tok["input_ids"],
                                                     attention_mask=tok["attention_mask"]).pooler_output)
    img, txt = img.numpy(), txt.numpy()
    return (img * txt).sum(1) / np.linalg.norm(img, axis=1) / np.linalg.norm(txt, axis=1)


def test_score_is_the_raw_cosine(tiny_clip):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(5)]
    texts = ["a red ball", "low", "lower tower", "a", "wider lows"]
    got = ClipScorer(tiny_clip, device="cpu").scores(images, texts)
    want = _by_hand(tiny_clip, images, texts)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert (got < 0).any() or (got > 0).all()  # not clipped at 0, not x100
    assert np.abs(got).max() <= 1.0


def test_overlong_prompt_is_truncated_not_an_error(tiny_clip):
    scorer = ClipScorer(tiny_clip, device="cpu")
    img = np.zeros((32, 32, 3), np.uint8)
    assert np.isfinite(scorer.scores([img], ["lower " * 100])).all()


def test_evaluate_reports_mean_and_std(tmp_path, tiny_clip, sample_dir):
    r = evaluate(EvalConfig(samples=str(sample_dir), out=str(tmp_path / "ev"), clip=str(tiny_clip), device="cpu"))
    c = r["metrics"]["clip"]
    ids = sorted(p.name for p in sample_dir.iterdir() if p.is_dir())
    images = [np.asarray(Image.open(sample_dir / i / "composite.png").convert("RGB")) for i in ids]
    want = _by_hand(tiny_clip, images, [f"a red ball {int(i[1:4])}" for i in ids])
    assert c["n"] == 6
    assert c["mean"] == pytest.approx(want.mean(), abs=1e-5) and c["std"] == pytest.approx(want.std(), abs=1e-5)
    assert any("FID: skipped, needs inception-2015-12-05.pt" in s for s in r["skipped"])


def test_dataset_only_table_v(tmp_path, tiny_clip, l2i_dir, la_dir):
    r = dataset_only(EvalConfig(real=str(l2i_dir), la=str(la_dir), out=str(tmp_path / "ds"), clip=str(tiny_clip),
                                device="cpu"))
    assert r["dataset"]["l2i"]["n"] == 39 and r["dataset"]["laion_a"]["n"] == 5
    md = (tmp_path / "ds" / "metrics.md").read_text()
    assert "paper: LAION-A | 0.278 ± 0.037" in md and "ours: LAION-L²I" in md
