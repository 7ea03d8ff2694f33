"""FID: the distance against a scipy reference, clean-fid's clean-mode features, cached reference statistics."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from cleanfid.fid import get_files_features

from training.eval import fid as fidlib
from training.eval.inception import InceptionFeatures
from training.eval.run import EvalConfig, evaluate


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(300, 6))
    assert abs(fidlib.fid_from_feats(x, x)) < 1e-6


def test_fid_of_two_gaussian_sets_equals_scipy_reference():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(400, 5))
    b = rng.normal(0.5, 1.0, size=(500, 5)) @ rng.normal(size=(5, 5))
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * np.trace(scipy.linalg.sqrtm(sa @ sb).real)
    assert fidlib.fid_from_feats(a, b) == pytest.approx(ref, rel=1e-9)
    assert ref > 1.0


def test_features_are_clean_fids_on_mixed_sizes(tiny_inception, sample_dir):
    """Our batched path gives clean-fid's own `get_files_features` (mode clean) features, sizes 64 and 48 mixed."""
    files = sorted(str(p) for p in sample_dir.glob("*/composite.png"))
    ext = InceptionFeatures(tiny_inception, device="cpu")
    ours = ext([(f, open(f, "rb").read(), "") for f in files])
    model = torch.jit.load(str(tiny_inception))
    theirs = get_files_features(files, model=lambda x: model.layers((x - 128) / 128).flatten(1), num_workers=0,
                                batch_size=4, device=torch.device("cpu"), mode="clean", verbose=False)
    assert ours.shape == (len(files), 12)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_cached_reference_statistics_are_reused(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.random.default_rng(0).normal(size=(50, 4))
    first = fidlib.cached_ref_stats(tmp_path, "ll2ie", "abc" * 10, "f" * 20, compute)
    again = fidlib.cached_ref_stats(tmp_path, "ll2ie", "abc" * 10, "f" * 20, compute)
    assert len(calls) == 1 and not first[3] and again[3]
    np.testing.assert_array_equal(first[1], again[1])
    fidlib.cached_ref_stats(tmp_path, "ll2ie", "other" * 4, "f" * 20, compute)  # another extractor: recomputed
    assert len(calls) == 2


def test_evaluate_twice_extracts_nothing_the_second_time(tmp_path, tiny_inception, sample_dir, l2i_dir, la_dir,
                                                         monkeypatch, is_test):
    counted = []
    real = InceptionFeatures.features

    def counting(self, images):
        counted.append(len(images))
        return real(self, images)
    monkeypatch.setattr(InceptionFeatures, "features", counting)
    cfg = EvalConfig(samples=str(sample_dir), real=str(l2i_dir), la=str(la_dir), out=str(tmp_path / "ev"),
                     inception=str(tiny_inception), test_fraction=0.5, device="cpu", batch_size=4)
    first = evaluate(cfg, is_test=is_test)
    m = first["metrics"]
    n_test = sum(is_test(f"0000{s}{i:04d}", 0.5, 0) for s in (0, 1) for i in range(20)) - \
        is_test("000000003", 0.5, 0)
    assert m["fid_ll2ie"]["n_ref"] == n_test and m["fid_ll2ie"]["n_samples"] == 6
    assert m["fid_la"]["n_ref"] == 5  # raw keys 3 (rejected from L2I) and 20..23; the others are in L2I
    assert m["fid_ll2ie"]["value"] > 0 and not m["fid_la"]["ref_stats_reused"]
    assert sum(counted) == 6 + n_test + 5
    assert any("biased high" in w for w in first["warnings"])
    counted.clear()
    second = evaluate(cfg, is_test=is_test)
    assert counted == [] and second["metrics"]["fid_la"]["ref_stats_reused"]
    assert second["metrics"]["fid_ll2ie"]["value"] == pytest.approx(m["fid_ll2ie"]["value"])


def test_interrupted_run_resumes_from_the_per_image_cache(tmp_path, tiny_inception, make_sample_dir, l2i_dir,
                                                          monkeypatch):
    samples = make_sample_dir(tmp_path / "s", 5)
    seen = []
    real = InceptionFeatures.features

    def crash_on_second_batch(self, images):
        seen.append(len(images))
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real(self, images)
    monkeypatch.setattr(InceptionFeatures, "features", crash_on_second_batch)
    cfg = EvalConfig(samples=str(samples), real=str(l2i_dir), test_fraction=0.05, out=str(tmp_path / "ev"),
                     inception=str(tiny_inception), device="cpu", batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate(cfg)
    seen.clear()
    monkeypatch.setattr(InceptionFeatures, "features", lambda self, images: seen.append(len(images)) or
                        real(self, images))
    r = evaluate(cfg)
    assert seen[:2] == [2, 1]  # samples: the first batch of 2 came from the cache; 3 images were left
    assert sum(seen[2:]) == r["metrics"]["fid_ll2ie"]["n_ref"]
