"""`l2i train` is registered, and `l2i models check` lists the LPIPS trunk file."""
from __future__ import annotations

import pytest

from l2i_pipeline.cli import build_parser, main


def test_train_ae_is_a_subcommand():
    args = build_parser().parse_args(["train", "ae", "--data", "d", "--out", "o"])
    assert args.runner == "ray" and args.workers == 1 and callable(args.func)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train"])  # a model is required


def test_models_check_lists_the_lpips_trunk(tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"lpips:\n  vgg_weights: {tmp_path / 'vgg16-397923af.pth'}\n")
    assert main(["models", "check", "--train-config", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "BAD lpips.vgg_weights (vgg16-397923af.pth" in out and "MISSING" in out
    assert "download.pytorch.org/models/vgg16-397923af.pth" in out
    (tmp_path / "vgg16-397923af.pth").write_bytes(b"x")
    assert main(["models", "check", "--train-config", str(cfg)]) == 0
    assert "present sha256=" in capsys.readouterr().out
