import numpy as np

from classifiers.evaluate import at_threshold, curves, metrics, plot_curves, roc_auc, threshold_for_precision


def _brute_auc(s, y):
    pos, neg = s[y], s[~y]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


def test_roc_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 60) / 4.0  # many ties
    y = rng.random(60) < 0.4
    assert abs(roc_auc(s, y) - _brute_auc(s, y)) < 1e-12
    assert roc_auc(np.array([0.1, 0.9]), np.array([False, True])) == 1.0
    assert np.isnan(roc_auc(np.array([0.1, 0.2]), np.array([True, True])))


def test_threshold_for_target_precision_keeps_most_recall():
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    y = np.array([True, True, False, True, False, False])
    thr, ok = threshold_for_precision(s, y, 0.75)
    assert ok and thr == 0.6  # keeps 0.9, 0.8, 0.7, 0.6: precision 3/4
    assert at_threshold(s, y, thr) == {"threshold": 0.6, "accuracy": 5 / 6, "precision": 0.75, "recall": 1.0,
                                       "kept_fraction": 4 / 6}
    c = curves(s, y)
    assert c["tpr"][-1] == 1.0 and c["fpr"][-1] == 1.0
    thr, ok = threshold_for_precision(np.array([0.9, 0.1]), np.array([False, True]), 0.99)
    assert not ok
    m = metrics(s, y, 0.75)
    assert m["n"] == 6 and m["n_good"] == 3 and m["at_target"]["precision"] == 0.75


def test_plots_written(tmp_path):
    s, y = np.linspace(0, 1, 20), np.arange(20) % 3 == 0
    paths = plot_curves(s, y, tmp_path, "mask", chosen=0.5)
    assert [p.name for p in paths] == ["mask_roc.png", "mask_pr.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
