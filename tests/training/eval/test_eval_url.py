"""`l2i eval --out s3://...` (moto on 127.0.0.1): the report and caches in the bucket, equal to a local run's;
a rerun reuses the cached features; a second run while the output lock is held is refused."""
from __future__ import annotations

import io
import json

import pyarrow.parquet as pq

from l2i_pipeline.cli import main
from l2i_pipeline.core.lock import LOCK, output_lock
from l2i_pipeline.core.storage import open_store
from training.eval.inception import InceptionFeatures
from training.eval.report import compare


def test_eval_into_a_bucket_resumes_and_holds_the_lock(tmp_path, s3_bucket, sample_dir, l2i_dir, la_dir,
                                                       tiny_inception, tiny_clip, monkeypatch, capsys):
    common = ["eval", "--runner", "local", "--samples", str(sample_dir), "--real", str(l2i_dir), "--la", str(la_dir),
              "--inception", str(tiny_inception), "--clip", str(tiny_clip), "--test-fraction", "0.5",
              "--device", "cpu", "--set", "batch_size=4"]
    out, local = f"{s3_bucket}/ev", tmp_path / "local"
    assert main([*common, "--out", str(local)]) == 0, capsys.readouterr().err
    assert main([*common, "--out", out]) == 0, capsys.readouterr().err
    assert "## Table I" in capsys.readouterr().out  # printed from the bucket
    store = open_store(out)
    ours, theirs = json.loads(store.get("metrics.json")), json.loads((local / "metrics.json").read_text())
    assert ours["out"] == out and theirs["out"] == str(local)
    for r in (ours, theirs):
        r.pop("out"), r["settings"].pop("out")
    assert ours == theirs
    assert store.get("metrics.md") == (local / "metrics.md").read_bytes()
    assert len(store.get("metrics.png")) > 1000
    objects = store.find()
    assert any(n.startswith("features/") for n in objects) and any(n.startswith("ref_stats/") for n in objects)
    assert LOCK not in objects and not [n for n in objects if ".tmp" in n or "probe" in n]
    assert not (local / LOCK).exists() and (local / "features").is_dir()

    extracted = []
    real = InceptionFeatures.features

    def counting(self, images):
        extracted.append(len(images))
        return real(self, images)
    monkeypatch.setattr(InceptionFeatures, "features", counting)
    assert main([*common, "--out", out]) == 0
    again = json.loads(store.get("metrics.json"))
    assert extracted == [] and again["metrics"]["fid_la"]["ref_stats_reused"]  # every row from the bucket's cache
    assert again["metrics"] == json.loads(store.get("metrics.json"))["metrics"]

    capsys.readouterr()
    with output_lock(store, "eval"):
        assert main([*common, "--out", out]) == 2
        assert "is writing to" in capsys.readouterr().err
        assert main([*common, "--out", out, "--no-lock"]) == 0  # the caller vouches for no other writer

    assert main(["eval", "compare", out, str(local), "--output", f"{s3_bucket}/cmp.md"]) == 0
    assert open_store(s3_bucket).get("cmp.md").decode() == compare([out, str(local)])


def test_eval_prompts_into_a_bucket(s3_bucket, l2i_dir, capsys):
    url = f"{s3_bucket}/prompts/ll2ie.parquet"
    assert main(["eval", "prompts", "--real", str(l2i_dir), "--out", url, "--test-fraction", "0.5"]) == 0
    rows = pq.read_table(io.BytesIO(open_store(f"{s3_bucket}/prompts").get("ll2ie.parquet"))).to_pylist()
    assert rows and set(rows[0]) == {"key", "prompt"}
    assert f"to {url}" in capsys.readouterr().out


def test_eval_reads_a_sample_dir_in_a_bucket(tmp_path, s3_bucket, sample_dir, l2i_dir, tiny_inception, capsys):
    # `l2i sample --out s3://...` then `l2i eval --samples s3://...`: no shared filesystem between them
    samples = open_store(f"{s3_bucket}/samples")
    for p in sample_dir.rglob("*"):
        if p.is_file():
            samples.put(p.relative_to(sample_dir).as_posix(), p.read_bytes())
    common = ["eval", "--runner", "local", "--real", str(l2i_dir), "--inception", str(tiny_inception),
              "--test-fraction", "0.5", "--device", "cpu"]
    assert main([*common, "--samples", str(sample_dir), "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--samples", samples.url, "--out", f"{s3_bucket}/ev"]) == 0, capsys.readouterr().err
    ours = json.loads(open_store(f"{s3_bucket}/ev").get("metrics.json"))
    theirs = json.loads((tmp_path / "local" / "metrics.json").read_text())
    assert ours["samples"] == samples.url and ours["name"] == theirs["name"] == "samples"
    assert ours["metrics"] == theirs["metrics"] and set(ours["metrics"]) == {"fid_ll2ie", "iou_saliency"}
    assert ours["n_samples"] == theirs["n_samples"] == 6 and ours["resolution"] == theirs["resolution"]
    assert main([*common, "--samples", f"{s3_bucket}/nothing", "--out", f"{s3_bucket}/ev2"]) == 2
    assert "sample dir not found" in capsys.readouterr().err
