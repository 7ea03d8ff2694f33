"""Issue 17: `l2i score` and `l2i filter` reruns honour provenance; filter thresholds are validated; one
filter per output."""
import json
import os
import shutil
import socket

import pytest

from classifiers.checkpoint import checkpoint_paths
from classifiers.filter import LOCK
from l2i_pipeline.cli import main
from l2i_pipeline.core import shards
from l2i_pipeline.core.sidecars import read_sidecar, sidecar_path, sidecar_provenance


@pytest.fixture
def mask_ckpt(tmp_path):
    """A tiny mask classifier saved by the production code (random backbone, zero head)."""
    import torch

    from classifiers.checkpoint import save_checkpoint
    from classifiers.model import QualityClassifier

    torch.manual_seed(0)
    model = QualityClassifier("mask", "pair", 64)
    save_checkpoint(model, {"created": "test"}, tmp_path / "ckpt" / "mask")
    return tmp_path / "ckpt" / "mask"


def _other_classifier(ckpt, out):
    """The same classifier with another head: other weights, other digest."""
    from safetensors.torch import load_file, save_file

    st, js = checkpoint_paths(ckpt)
    new_st, new_js = checkpoint_paths(out)
    state = load_file(str(st))
    state["fc.bias"] = state["fc.bias"] + 3.0
    save_file(state, str(new_st), metadata={"task": "mask", "encoding": json.loads(js.read_text())["encoding"]})
    shutil.copy(js, new_js)
    return out


def _mask_scores(d, names):
    return {k: v["mask_score"] for n in names for k, v in read_sidecar(sidecar_path(d, n)).items()}


def _score(d, ckpt, *extra):
    return main(["score", "--input", str(d), "--mask-classifier", str(ckpt), "--device", "cpu",
                 "--runner", "local", *extra])


def _filter(d, out, threshold="0.5"):
    return main(["filter", "--input", str(d), "--output", str(out), "--min-mask-score", threshold])


def test_rescore_with_other_classifier_is_refused_or_redone_and_filter_follows(mask_ckpt, make_l2iu, tmp_path,
                                                                               capsys):
    d, out = tmp_path / "l2iu", tmp_path / "l2i"
    make_l2iu(d, n_shards=2, per_shard=3, seed=7)
    names = shards.list_output_shards(d)
    assert _score(d, mask_ckpt) == 0
    first = _mask_scores(d, names)
    assert _filter(d, out) == 0
    other = _other_classifier(mask_ckpt, tmp_path / "other_mask")

    capsys.readouterr()
    assert _score(d, other) == 2  # mixing provenances is refused, naming what differs
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "mask scores from classifier sha256" in err and "--overwrite" in err
    assert _mask_scores(d, names) == first

    assert _score(d, other, "--overwrite") == 0  # ... or redone on request
    digest = sidecar_provenance(sidecar_path(d, names[0]))["classifiers"]["mask"]["sha256"]
    assert all(
        sidecar_provenance(sidecar_path(d, n))["classifiers"]["mask"]["sha256"] == digest for n in names)
    assert _mask_scores(d, names) != first
    assert _score(d, other) == 0  # same classifier now: nothing to do, no complaint

    assert _filter(d, out) == 0  # same thresholds, new scores: every shard redone, not skipped
    report = json.loads((out / "filter_report.json").read_text())
    assert report["shards_skipped"] == 0
    kept = {r["key"] for r in shards.read_output_index(out).to_pylist() if r["status"] == "ok"}
    assert kept == {k for k, v in _mask_scores(d, names).items() if v >= 0.5}
    assert _filter(d, out) == 0 and json.loads((out / "filter_report.json").read_text())["shards_skipped"] == 2


@pytest.mark.parametrize("threshold", ["nan", "2", "1.5", "-0.1"])
def test_filter_thresholds_outside_0_1_are_refused(tmp_path, make_l2iu, capsys, threshold):
    make_l2iu(tmp_path / "u", n_shards=1, per_shard=2, seed=3, inline_scores=True)
    assert _filter(tmp_path / "u", tmp_path / "o", threshold) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "[0, 1]" in err and not (tmp_path / "o").exists()


def test_two_filters_into_one_output_cannot_mix(tmp_path, make_l2iu, capsys):
    d, out = tmp_path / "u", tmp_path / "o"
    make_l2iu(d, n_shards=1, per_shard=2, seed=4, inline_scores=True)
    out.mkdir()
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "min_mask_score": 0.9}  # a live run
    (out / LOCK).write_text(json.dumps(owner))
    assert _filter(d, out) == 2
    err = capsys.readouterr().err.strip()
    assert "another `l2i filter` is writing" in err and not shards.list_output_shards(out)
    owner["pid"] = 2**22 + 12345  # a run killed on this host: its lock is taken over
    (out / LOCK).write_text(json.dumps(owner))
    assert _filter(d, out) == 0 and shards.list_output_shards(out) and not (out / LOCK).exists()


def test_score_and_filter_through_a_bucket(mask_ckpt, make_l2iu, tmp_path, s3_bucket):
    """`l2i score` and `l2i filter` on s3:// URLs: sidecars beside the shards, filtered shards committed with
    their markers, the report in the bucket; a rerun skips everything."""
    from l2i_pipeline.core.storage import open_store

    local = tmp_path / "l2iu"
    make_l2iu(local, n_shards=2, per_shard=3, seed=5)
    src = open_store(f"{s3_bucket}/l2iu")
    for p in sorted(local.iterdir()):
        src.put(p.name, p.read_bytes())
    assert _score(src.url, mask_ckpt) == 0
    names = shards.list_output_shards(src)
    assert all(f"{n}_scores.parquet" in src.list() for n in names) and _mask_scores(src.url, names)
    assert _filter(src.url, f"{s3_bucket}/l2i") == 0
    out = open_store(f"{s3_bucket}/l2i")
    assert shards.list_output_shards(out) == names and out.exists("filter_report.json")
    assert _score(src.url, mask_ckpt) == 0 and _filter(src.url, out.url) == 0
    assert json.loads(out.get("filter_report.json"))["shards_skipped"] == len(names)
