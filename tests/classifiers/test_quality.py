"""Trained heads beat chance on held-out synthetic data where quality is visible (random backbone)."""
import json

import torch
from safetensors.torch import load_file

from classifiers.checkpoint import checkpoint_paths
from classifiers.model import load_backbone_state
from l2i_pipeline.cli import main


def test_heads_beat_chance_on_held_out_split(trained, capsys):
    aucs = {}
    for task, ckpt in trained.items():
        meta = json.loads(checkpoint_paths(ckpt)[1].read_text())
        test = meta["metrics"]["test"]
        aucs[task] = (meta["encoding"], test["roc_auc"], meta["encoding_selection"])
        assert test["n"] >= 80 and test["n_good"] and test["n_bad"]
        assert test["roc_auc"] > 0.7, (task, test)
        assert meta["label_counts"]["train"]["good"] > 0 and meta["train_config"]["epochs"] == 100
    assert aucs["mask"][0] in ("pair", "stem4") and set(aucs["mask"][2]) == {"pair", "stem4"}
    with capsys.disabled():
        print(f"\nheld-out ROC-AUC: {aucs}")


def test_checkpoint_backbone_is_untouched_by_training(trained, backbone_file):
    state = load_backbone_state(backbone_file)
    saved = load_file(str(checkpoint_paths(trained["inpaint"])[0]))
    for k, v in state.items():
        if not k.startswith("_fc"):
            assert torch.equal(saved[f"backbone.{k}"], v), k  # running stats included
    assert saved["fc.weight"].shape == (1, 1280)


def test_eval_writes_metrics_plots_and_threshold(trained, quality_set, tmp_path):
    ckpt = trained["inpaint"]
    argv = ["classifiers", "eval", "--checkpoint", str(ckpt), "--labels", str(quality_set / "labels.parquet"),
            "--samples", str(quality_set / "l2iu"), "--out-dir", str(tmp_path), "--target-precision", "0.8",
            "--device", "cpu", "--write-threshold"]
    assert main(argv) == 0
    m = json.loads((tmp_path / "inpaint_metrics.json").read_text())
    meta = json.loads(checkpoint_paths(ckpt)[1].read_text())
    train_auc = meta["metrics"]["test"]["roc_auc"]
    assert abs(m["roc_auc"] - train_auc) < 1e-3  # same model, same split, scored end to end
    assert meta["threshold"] == m["at_target"]["threshold"] and "0.8" in meta["threshold_source"]
    assert (tmp_path / "inpaint_roc.png").stat().st_size > 1000 and (tmp_path / "inpaint_pr.png").exists()
