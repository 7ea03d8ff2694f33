"""Binary metrics in numpy (no scikit-learn): ROC/PR curves, AUC, a threshold for a target precision,
and the PNG plots. `good` is the positive class: a threshold keeps samples with P(good) >= threshold."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def roc_auc(scores: np.ndarray, good: np.ndarray) -> float:
    """Mann-Whitney U with average ranks for ties; nan when one class is absent."""
    good = np.asarray(good, bool)
    n_pos, n_neg = good.sum(), (~good).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = np.asarray(scores)[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):  # average rank over each run of equal scores
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(s))
    r[order] = ranks
    return float((r[good].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def curves(scores: np.ndarray, good: np.ndarray) -> dict[str, np.ndarray]:
    """TPR/FPR/precision/recall at every distinct threshold, highest threshold first."""
    good = np.asarray(good, bool)
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    s, g = np.asarray(scores)[order], good[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(g)[last].astype(float)
    fp = np.cumsum(~g)[last].astype(float)
    n_pos, n_neg = max(good.sum(), 1), max((~good).sum(), 1)
    return {"threshold": s[last], "tpr": tp / n_pos, "fpr": fp / n_neg,
            "precision": tp / np.maximum(tp + fp, 1), "recall": tp / n_pos}


def at_threshold(scores: np.ndarray, good: np.ndarray, threshold: float) -> dict[str, float]:
    good = np.asarray(good, bool)
    pred = np.asarray(scores) >= threshold
    tp, fp = float((pred & good).sum()), float((pred & ~good).sum())
    fn = float((~pred & good).sum())
    return {"threshold": float(threshold), "accuracy": float((pred == good).mean()) if len(good) else float("nan"),
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"), "kept_fraction": float(pred.mean())}


def threshold_for_precision(scores: np.ndarray, good: np.ndarray, target: float) -> tuple[float, bool]:
    """Lowest threshold whose precision reaches `target` (most recall). (threshold, reached)."""
    c = curves(scores, good)
    ok = np.nonzero(c["precision"] >= target)[0]
    if len(ok) == 0:
        return float(c["threshold"][np.argmax(c["precision"])]), False
    return float(c["threshold"][ok[-1]]), True


def metrics(scores: np.ndarray, good: np.ndarray, target_precision: float = 0.9) -> dict[str, Any]:
    """Everything the checkpoint JSON and `l2i classifiers eval` report for one split."""
    thr, reached = threshold_for_precision(scores, good, target_precision)
    return {
        "n": int(len(good)), "n_good": int(np.sum(good)), "n_bad": int(len(good) - np.sum(good)),
        "roc_auc": roc_auc(scores, good),
        "at_0.5": at_threshold(scores, good, 0.5),
        "target_precision": target_precision, "target_reached": reached,
        "at_target": at_threshold(scores, good, thr),
    }


def plot_curves(scores: np.ndarray, good: np.ndarray, out_dir: str | Path, prefix: str,
                chosen: float | None = None) -> list[Path]:
    """`{prefix}_roc.png` and `{prefix}_pr.png` in out_dir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    c = curves(scores, good)
    pick = None if chosen is None else int(np.searchsorted(-c["threshold"], -chosen, side="right")) - 1
    paths = []
    axes = {"roc": (np.r_[0, c["fpr"]], np.r_[0, c["tpr"]], "false positive rate", "true positive rate"),
            "pr": (c["recall"], c["precision"], "recall", "precision")}
    for kind, (x, y, xl, yl) in axes.items():
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(x, y, lw=1.5)
        if kind == "roc":
            ax.plot([0, 1], [0, 1], "k:", lw=0.8)
            ax.set_title(f"{prefix}: ROC, AUC {roc_auc(scores, good):.3f}")
        else:
            ax.set_title(f"{prefix}: precision-recall")
        if pick is not None and pick >= 0:
            px, py = (c["fpr"][pick], c["tpr"][pick]) if kind == "roc" else (c["recall"][pick], c["precision"][pick])
            ax.plot([px], [py], "ro", label=f"threshold {chosen:.3f}")
            ax.legend(loc="lower right")
        ax.set_xlabel(xl), ax.set_ylabel(yl), ax.set_xlim(0, 1), ax.set_ylim(0, 1.02)
        fig.tight_layout()
        path = out / f"{prefix}_{kind}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
