"""`saliency.backend: icon` stand-alone (check, setup, predict, describe) and `l2i models check`.

The weight file is the seeded ICON-R stand-in saved under the official key names, so predictions are
compared with the official network's end-to-end output on the same odd-sized images.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from l2i_pipeline.commands import models as models_cli
from stages.config import ConfigError, SaliencyConfig
from stages.registry import SALIENCY
from stages.saliency_icon import IconBackend


@pytest.fixture(scope="module")
def res_weights(tmp_path_factory, icon_ref) -> Path:
    path = tmp_path_factory.mktemp("icon") / "ICON-Res.weight"
    torch.save(icon_ref.official_weights("ICON-R"), path)
    return path


def _cfg(**kw) -> SaliencyConfig:
    return SaliencyConfig(**{"backend": "icon", "variant": "ICON-R", "device": "cpu", "batch_size": 2, **kw})


def test_registry_points_at_this_backend():
    assert SALIENCY["icon"] == "stages.saliency_icon:IconBackend"
    assert IconBackend.uses_gpu is True


def test_check_fails_fast_with_clear_messages(tmp_path, res_weights):
    with pytest.raises(ConfigError, match="saliency.weights is not set.*ICON-Res.weight.*drive.google.com"):
        IconBackend(_cfg(weights=None)).check()
    absent = tmp_path / "nope" / "ICON-Swin.weight"
    with pytest.raises(ConfigError, match=f"{absent} not found.*ICON-Swin.weight.*github.com/mczhuge/ICON"):
        IconBackend(_cfg(variant="ICON-S", weights=str(absent))).check()
    with pytest.raises(ConfigError, match="saliency.variant 'ICON-X'"):
        IconBackend(_cfg(variant="ICON-X", weights=str(res_weights))).check()
    with pytest.raises(ConfigError, match="saliency.device"):
        IconBackend(_cfg(weights=str(res_weights), device="tpu")).check()
    IconBackend(_cfg(weights=str(res_weights))).check()


def test_setup_with_another_variants_file_names_the_keys(res_weights):
    backend = IconBackend(_cfg(variant="ICON-P", weights=str(res_weights)))
    backend.check()  # the file exists; only loading can tell it is the wrong one
    with pytest.raises(ConfigError, match="missing .* keys: .*encoder.block1"):
        backend.setup()


def test_predict_matches_official_on_odd_sizes(res_weights, icon_ref):
    torch.set_num_threads(2)
    meta, ref = icon_ref.meta("ICON-R"), icon_ref.arrays("ICON-R")
    backend = IconBackend(_cfg(weights=str(res_weights)))
    backend.check()
    backend.setup()
    cases = meta["e2e"]
    images = [icon_ref.random_rgb(c["image_seed"], *c["shape"]) for c in cases]
    images.append(icon_ref.random_rgb(7, 17, 23))  # batch_size 2: a second, partial batch
    maps = backend.predict(images)
    assert [m.shape for m in maps] == [im.shape[:2] for im in images]
    for m in maps:
        assert m.dtype == np.float32 and 0.0 <= m.min() and m.max() <= 1.0
    for i, case in enumerate(cases):
        s = case["stride"]
        expected = 1 / (1 + np.exp(-ref[f"e2e{i}_logits"].astype(np.float64)))
        diff = np.abs(maps[i][::s, ::s] - expected).max()
        print(f"ICON-R backend {case['shape']} max abs probability diff {diff:.2e}")
        assert diff <= 2.5e-4  # 1e-3 in logits; sigmoid's slope is at most 1/4

    d = backend.describe()
    assert d == {"backend": "icon", "variant": "ICON-R", "weights": str(res_weights),
                 "weights_sha256": hashlib.sha256(res_weights.read_bytes()).hexdigest()}


def _models_check(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    models_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["models", "check", *argv])
    return args.func(args)


def test_models_check_lists_files_presence_and_digest(res_weights, tmp_path, capsys):
    digest = hashlib.sha256(res_weights.read_bytes()).hexdigest()
    rc = _models_check(["--set", "saliency.backend=icon", "--set", f"saliency.weights={res_weights}"])
    out = capsys.readouterr().out
    assert rc == 0
    assert str(res_weights) in out and f"sha256={digest}" in out and "ICON-Res.weight" in out
    assert "drive.google.com" in out and "pan.baidu.com" in out

    config = tmp_path / "c.yaml"
    config.write_text(f"saliency:\n  backend: icon\n  variant: ICON-S\n  weights: {tmp_path / 'ICON-Swin.weight'}\n"
                      f"score:\n  mask_classifier: {tmp_path / 'mask.pt'}\n")
    rc = _models_check(["--config", str(config)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "MISSING" in out and "ICON-Swin.weight" in out and "mask.pt" in out

    rc = _models_check(["--set", "saliency.backend=icon"])
    assert rc == 1 and "NOT SET" in capsys.readouterr().out


def test_synthesize_with_icon_on_ray_actor_pool(res_weights, tmp_path):
    """`l2i synthesize --set saliency.backend=icon ...` on a tiny shard, through the Ray actor pool on CPU."""
    import json
    import subprocess
    import sys

    import pyarrow.parquet as pq
    from rawshards import make_rows, write_raw_shard

    write_raw_shard(tmp_path / "raw", "00000", make_rows(3))
    cmd = [sys.executable, "-m", "l2i_pipeline.cli", "synthesize", "--input", str(tmp_path / "raw"),
           "--output", str(tmp_path / "l2i"), "--num-cpus", "2", "--set", "resolution=96",
           "--set", "saliency.backend=icon", "--set", "saliency.variant=ICON-R",
           "--set", f"saliency.weights={res_weights}", "--set", "saliency.batch_size=2",
           "--set", "layers.min_area=0.0", "--set", "layers.max_area=1.0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = pq.read_table(tmp_path / "l2i" / "00000_0000.parquet").to_pylist()
    assert len(rows) == 3
    for r in rows:  # seeded weights give arbitrary masks: ok, or rejected by the layer checks, never an error
        assert r["status"] == "ok" or r["reason"] in ("layers:mask_empty", "saliency:no_salient_object"), r["reason"]
        meta = json.loads(r["meta"])
        assert meta["saliency"]["backend"] == "icon" and meta["saliency"]["variant"] == "ICON-R"
        assert meta["saliency"]["weights_sha256"] == hashlib.sha256(res_weights.read_bytes()).hexdigest()


def test_synthesize_fails_fast_on_missing_weights(tmp_path, capsys):
    from rawshards import make_rows, write_raw_shard

    from l2i_pipeline.cli import main

    write_raw_shard(tmp_path / "raw", "00000", make_rows(1))
    rc = main(["synthesize", "--input", str(tmp_path / "raw"), "--output", str(tmp_path / "l2i"),
               "--set", "saliency.backend=icon", "--set", f"saliency.weights={tmp_path / 'ICON-Res.weight'}"])
    assert rc == 2 and "ICON-Res.weight" in capsys.readouterr().err
    assert not (tmp_path / "l2i").exists()
