"""`l2i classifiers train`: frozen features computed once, then a plain loop fits the one-neuron head.

With `--encoding auto` (mask task) every encoding's features are computed in the same pass, each head is
fitted on train minus a seeded validation part, and the encoding with the best validation ROC-AUC is kept
and refitted on the whole train split. Features are standardised for the fit; the standardisation is
folded back into fc so the checkpoint is the plain paper model.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classifiers import evaluate, labels
from classifiers.checkpoint import save_checkpoint
from classifiers.features import batched, extract
from classifiers.model import DEFAULT_ENCODING, ENCODINGS, QualityClassifier, load_backbone_state, pick_device
from l2i_pipeline.core.errors import ConfigError, InputError

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    task: str
    labels: str
    samples: str
    out: str
    backbone_weights: str | None = None
    encoding: str | None = None  # None: the task's default; "auto": try all, keep the best on validation
    image_size: int = 224
    epochs: int = 100  # as the paper
    batch_size: int = 64
    lr: float = 1e-3
    l2: float = 1e-3  # penalty on the head's weights (features are standardised)
    val_fraction: float = 0.2  # of train, only for --encoding auto
    target_precision: float = 0.9
    seed: int = 0
    device: str = "auto"
    feature_batch: int = 64


@dataclass
class Head:
    weight: np.ndarray  # feature_dim, in raw feature units (standardisation folded in)
    bias: float

    def scores(self, feats: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(feats @ self.weight + self.bias)))


def fit_head(feats: np.ndarray, good: np.ndarray, cfg: TrainConfig) -> Head:
    """Logistic regression by Adam on standardised features: nanoGPT-style loop, seconds for 100 epochs."""
    g = torch.Generator().manual_seed(cfg.seed)
    mu, sd = feats.mean(0), feats.std(0)
    sd = sd + 1e-3 * sd.mean() + 1e-30  # constant features stay finite
    x = torch.from_numpy((feats - mu) / sd).float()
    y = torch.from_numpy(np.asarray(good, np.float32))
    fc = torch.nn.Linear(x.shape[1], 1)
    with torch.no_grad():
        fc.weight.normal_(0.0, 0.01, generator=g)
        fc.bias.zero_()
    opt = torch.optim.Adam(fc.parameters(), lr=cfg.lr)
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            logits = fc(x[idx]).squeeze(1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[idx])
            loss = loss + cfg.l2 * fc.weight.pow(2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    w = fc.weight.detach().numpy()[0] / sd
    return Head(w.astype(np.float32), float(fc.bias.item() - (w * mu).sum()))


def compute_features(models: dict[str, QualityClassifier], cfg: TrainConfig, items: list[labels.Labelled],
                     device: torch.device) -> tuple[dict[str, np.ndarray], list[labels.Labelled]]:
    """Features of every labelled sample for every candidate encoding, in one pass over the shards."""
    feats: dict[str, list[np.ndarray]] = {enc: [] for enc in models}
    found: list[labels.Labelled] = []
    stream = labels.iter_prepared(cfg.samples, items, cfg.task, cfg.image_size)
    for chunk in batched(stream, 256):
        inputs = np.stack([c[0] for c in chunk])
        found.extend(c[1] for c in chunk)
        for enc, model in models.items():
            feats[enc].append(extract(model, inputs, device, cfg.feature_batch))
    return {enc: np.concatenate(f) for enc, f in feats.items()}, found


def _split_val(n: int, fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    val = np.zeros(n, bool)
    val[rng.permutation(n)[: max(1, int(round(n * fraction)))]] = True
    return val


def _file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train, evaluate on the test split, write the checkpoint; returns its JSON meta."""
    t0 = time.time()
    if cfg.task not in ENCODINGS:
        raise ConfigError(f"unknown task {cfg.task!r}; choose one of {sorted(ENCODINGS)}")
    encodings = list(ENCODINGS[cfg.task]) if cfg.encoding == "auto" else [cfg.encoding or DEFAULT_ENCODING[cfg.task]]
    items = labels.resolve(labels.read_export(cfg.labels), cfg.task)
    if not items:
        raise InputError(f"{cfg.labels} has no good/bad labels for task {cfg.task!r}")
    state = load_backbone_state(cfg.backbone_weights)
    device = pick_device(cfg.device)
    models = {enc: QualityClassifier(cfg.task, enc, cfg.image_size, state).to(device) for enc in encodings}
    feats, found = compute_features(models, cfg, items, device)
    good = np.array([it.good for it in found])
    is_test = np.array([it.split == "test" for it in found])
    train_idx = ~is_test
    if good[train_idx].all() or not good[train_idx].any():
        raise InputError(f"the train split needs both good and bad {cfg.task} labels; got {labels.label_counts(found)}")

    selection: dict[str, Any] = {}
    if len(encodings) > 1:
        val = _split_val(int(train_idx.sum()), cfg.val_fraction, cfg.seed)
        for enc in encodings:
            f, g = feats[enc][train_idx], good[train_idx]
            head = fit_head(f[~val], g[~val], cfg)
            s = head.scores(f[val])
            selection[enc] = {"val_roc_auc": evaluate.roc_auc(s, g[val]),
                              "val_accuracy": evaluate.at_threshold(s, g[val], 0.5)["accuracy"]}
            log.info("encoding %s: validation ROC-AUC %.3f, accuracy %.3f", enc,
                     selection[enc]["val_roc_auc"], selection[enc]["val_accuracy"])
        best = max(encodings, key=lambda e: (np.nan_to_num(selection[e]["val_roc_auc"]), selection[e]["val_accuracy"]))
    else:
        best = encodings[0]
    model = models[best]
    head = fit_head(feats[best][train_idx], good[train_idx], cfg)
    with torch.no_grad():
        model.fc.weight.copy_(torch.from_numpy(head.weight)[None])
        model.fc.bias.fill_(head.bias)

    result = {"train": evaluate.metrics(head.scores(feats[best][train_idx]), good[train_idx], cfg.target_precision)}
    threshold, source = 0.5, "default"
    if is_test.any():
        result["test"] = evaluate.metrics(head.scores(feats[best][is_test]), good[is_test], cfg.target_precision)
        threshold, source = result["test"]["at_target"]["threshold"], f"test precision >= {cfg.target_precision}"
    meta = {
        "threshold": threshold, "threshold_source": source, "metrics": result,
        "label_counts": labels.label_counts(found), "labels_missing": len(items) - len(found),
        "encoding_selection": selection, "backbone": "efficientnet-b0",
        "backbone_weights": str(cfg.backbone_weights), "backbone_sha256_16": _file_digest(cfg.backbone_weights),
        "train_config": asdict(replace(cfg, samples=str(cfg.samples))), "seconds": round(time.time() - t0, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    paths = save_checkpoint(model.cpu(), meta, cfg.out)
    log.info("wrote %s and %s", *paths)
    return {**meta, "task": cfg.task, "encoding": best, "image_size": cfg.image_size, "paths": [str(p) for p in paths]}
