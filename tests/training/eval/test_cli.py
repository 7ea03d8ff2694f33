"""`l2i eval` end to end through the CLI: every metric with tiny weights, skips named, bad input, compare, report."""
from __future__ import annotations

import json
import shutil

import pytest

from l2i_pipeline.cli import main
from training.eval.report import PAPER, compare, model_markdown

LOCAL = ["--runner", "local"]  # the CLI's default runner is ray


def test_all_metrics_through_the_cli(tmp_path, sample_dir, l2i_dir, la_dir, tiny_inception, tiny_clip, capsys):
    human = tmp_path / "human"
    human.mkdir()
    first = sorted(p.name for p in sample_dir.iterdir() if p.is_dir())[0]
    shutil.copy(sample_dir / first / "mask.png", human / f"{first}.png")
    out = tmp_path / "ev"
    rc = main(["eval", *LOCAL, "--samples", str(sample_dir), "--real", str(l2i_dir), "--la", str(la_dir),
               "--out", str(out), "--inception", str(tiny_inception), "--clip", str(tiny_clip),
               "--human-masks", str(human), "--test-fraction", "0.5", "--device", "cpu", "--name", "tiny",
               "--set", "batch_size=4"])
    assert rc == 0
    r = json.loads((out / "metrics.json").read_text())
    assert set(r["metrics"]) == {"fid_ll2ie", "fid_la", "clip", "iou_saliency", "iou_human"}
    assert r["metrics"]["iou_human"] == {"mean": 1.0, "std": 0.0, "n": 1}
    assert r["settings"]["batch_size"] == 4 and r["settings"]["test_fraction"] == 0.5
    assert [s for s in r["skipped"] if not s.startswith("IOU (ICON)")] == []
    assert (out / "metrics.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "## Table I" in printed and "ours: tiny" in printed


def test_metrics_md_has_the_papers_rows_and_ours():
    report = {"name": "run7", "samples": "s", "n_samples": 3, "resolution": 256, "skipped": ["FID: skipped, x"],
              "warnings": [], "metrics": {"clip": {"mean": 0.2, "std": 0.01, "n": 3},
                                          "iou_saliency": {"mean": 0.5, "std": 0.1, "n": 3, "icon": True,
                                                           "reference": "ICON-R"}}}
    md = model_markdown(report)
    for name, res, a, b, c, i, h in PAPER:
        assert f"| paper: {name} | {res} | {a:.2f} | {b:.2f} | {c:.3f} |" in md
        if i is not None:
            assert f"| paper: {name} | {i:.3f} | {h:.3f} |" in md
    assert "| **ours: run7** | 256 | – | – | 0.200 ± 0.010 |" in md
    assert "| **ours: run7** | 0.500 | – |" in md  # ICON: no dagger
    assert "paper: CaT²I-AE-SD on LAION-L²I (U) | 13.82 | 0.234 | 0.736" in md
    assert "- FID: skipped, x" in md


def test_offline_run_names_each_skipped_metric_and_its_file(tmp_path, sample_dir, l2i_dir, capsys):
    rc = main(["eval", *LOCAL, "--samples", str(sample_dir), "--real", str(l2i_dir), "--out", str(tmp_path / "ev")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "- FID: skipped, needs inception-2015-12-05.pt (--inception FILE)" in printed
    assert "nvlabs-fi-cdn.nvidia.com" in printed
    assert "- CLIP score: skipped, needs CLIP ViT-L/14 (--clip DIR)" in printed
    assert "huggingface.co/openai/clip-vit-large-patch14" in printed
    assert "IOU (ICON): skipped, needs ICON-Res.weight" in printed
    r = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(r["metrics"]) == {"iou_saliency"}


def test_given_but_missing_weights_are_one_error_naming_each(tmp_path, sample_dir, capsys):
    rc = main(["eval", *LOCAL, "--samples", str(sample_dir), "--out", str(tmp_path / "ev"),
               "--inception", str(tmp_path / "inception-2015-12-05.pt"), "--clip", str(tmp_path / "clip")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("l2i eval: error: ")
    assert "inception-2015-12-05.pt not found" in err[0] and "nvlabs-fi-cdn" in err[0]
    assert "clip not found" in err[0] and "openai/clip-vit-large-patch14" in err[0]
    assert not (tmp_path / "ev").exists()  # before any work


def test_strict_refuses_to_skip(tmp_path, sample_dir, capsys):
    assert main(["eval", *LOCAL, "--samples", str(sample_dir), "--out", str(tmp_path / "ev"), "--strict"]) == 2
    assert "inception-2015-12-05.pt" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["no_composites", "no_index", "missing_dir"])
def test_bad_sample_dirs(tmp_path, make_sample_dir, case, capsys):
    d = tmp_path / "s"
    if case == "no_composites":
        make_sample_dir(d, 3, with_composites=False)
    elif case == "no_index":
        d.mkdir()
    rc = main(["eval", *LOCAL, "--samples", str(d), "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert rc == 2
    assert {"no_composites": "none of the 3 samples has a composite.png", "no_index": "has no samples.parquet",
            "missing_dir": "sample dir not found"}[case] in err


def test_some_missing_composites_are_left_out_with_a_warning(tmp_path, make_sample_dir):
    d = make_sample_dir(tmp_path / "s", 4)
    (sorted(d.glob("*/composite.png"))[0]).unlink()
    assert main(["eval", *LOCAL, "--samples", str(d), "--out", str(tmp_path / "ev")]) == 0
    r = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert r["n_samples"] == 3 and "1 samples without composite.png left out" in r["warnings"]


def test_compare_sorts_by_fid(tmp_path, capsys):
    def write(name, fid):
        d = tmp_path / name
        d.mkdir()
        m = {"clip": {"mean": 0.2, "std": 0.0, "n": 1}}
        if fid is not None:
            m["fid_ll2ie"] = {"value": fid, "n_samples": 1, "n_ref": 1}
        (d / "metrics.json").write_text(json.dumps({"name": name, "n_samples": 1, "out": str(d), "metrics": m}))
        return str(d)
    dirs = [write("b", 12.0), write("none", None), write("a", 3.5)]
    assert main(["eval", "compare", *dirs, "--output", str(tmp_path / "cmp.md")]) == 0
    rows = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows == ["run", "a", "b", "none"]
    assert (tmp_path / "cmp.md").read_text() == compare(dirs)
    assert main(["eval", "compare", str(tmp_path / "nothing")]) == 2


def test_split_from_a_training_run(tmp_path, sample_dir, l2i_dir):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"config": {"data": {"test_fraction": 0.3, "split_seed": 7}}}))
    assert main(["eval", *LOCAL, "--samples", str(sample_dir), "--real", str(l2i_dir), "--out", str(tmp_path / "ev"),
                 "--split-from", str(run), "--max-samples", "2"]) == 0
    r = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert r["settings"]["test_fraction"] == 0.3 and r["settings"]["split_seed"] == 7 and r["n_samples"] == 2


@pytest.mark.slow
def test_ray_runner_gives_the_local_features(tmp_path, sample_dir, l2i_dir, tiny_inception, tiny_clip):
    """A local Ray (2 CPUs) actor pool computes the same per-image rows as the local runner."""
    import ray

    broken = sorted(sample_dir.glob("*/composite.png"))[0]
    broken.write_bytes(b"not a png")  # a bad image in a batch on an actor: left out, not the end of the run
    common = ["--samples", str(sample_dir), "--real", str(l2i_dir), "--inception", str(tiny_inception),
              "--clip", str(tiny_clip), "--test-fraction", "0.5", "--device", "cpu"]
    assert main(["eval", *common, "--out", str(tmp_path / "local"), "--runner", "local"]) == 0
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False)  # never another session's cluster
        assert main(["eval", *common, "--out", str(tmp_path / "ray"), "--runner", "ray"]) == 0
    finally:
        ray.shutdown()
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text())["metrics"] for d in ("local", "ray"))
    assert b["clip"]["n"] == a["clip"]["n"] == 5
    for key in ("fid_ll2ie", "clip", "iou_saliency"):
        for field in ("value", "mean"):
            if field in a[key]:
                assert b[key][field] == pytest.approx(a[key][field], rel=1e-5, abs=1e-6)


def test_prompts_are_the_held_out_captions(tmp_path, l2i_dir, is_test, capsys):
    import pyarrow.parquet as pq

    out = tmp_path / "prompts.parquet"
    assert main(["eval", "prompts", "--real", str(l2i_dir), "--out", str(out), "--test-fraction", "0.5"]) == 0
    rows = pq.read_table(out).to_pylist()
    keys = [f"0000{s}{i:04d}" for s in (0, 1) for i in range(20) if f"0000{s}{i:04d}" != "000000003"]
    assert [r["key"] for r in rows] == [k for k in keys if is_test(k, 0.5, 0)]
    assert all(r["prompt"] == f"a red ball {r['key']}" for r in rows)
    assert main(["eval", "prompts", "--real", str(l2i_dir), "--out", str(out), "--test-fraction", "1e-9"]) == 2


def test_text_to_image_samples_without_masks_skip_iou(tmp_path, make_sample_dir):
    d = make_sample_dir(tmp_path / "s", 2)
    for m in d.glob("*/mask.png"):
        m.unlink()
    assert main(["eval", *LOCAL, "--samples", str(d), "--out", str(tmp_path / "ev")]) == 0
    r = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert r["metrics"] == {} and any(s.startswith("IOU: not applicable") for s in r["skipped"])


def test_models_check_lists_the_eval_weights(tmp_path, tiny_inception, capsys):
    assert main(["models", "check", "--inception", str(tiny_inception)]) == 0
    out = capsys.readouterr().out
    assert "ok  eval --inception (inception-2015-12-05.pt)" in out and "present" in out
    assert "eval --clip (CLIP ViT-L/14)" in out and "huggingface.co/openai/clip-vit-large-patch14" in out
    assert main(["models", "check", "--clip", str(tmp_path / "nope")]) == 1
    assert "BAD eval --clip" in capsys.readouterr().out


def test_a_file_that_is_not_the_inception_torchscript(tmp_path, sample_dir, l2i_dir, capsys):
    bogus = tmp_path / "inception-2015-12-05.pt"
    bogus.write_bytes(b"not a model")
    rc = main(["eval", *LOCAL, "--samples", str(sample_dir), "--real", str(l2i_dir), "--out", str(tmp_path / "ev"),
               "--inception", str(bogus), "--test-fraction", "0.5"])
    assert rc == 2 and "is not a torchscript file" in capsys.readouterr().err


def test_a_corrupt_composite_is_left_out_and_counted(tmp_path, make_sample_dir, l2i_dir, tiny_inception, tiny_clip):
    d = make_sample_dir(tmp_path / "s", 5)
    broken = sorted(d.glob("*/composite.png"))[1]
    broken.write_bytes(broken.read_bytes()[:40])  # truncated PNG
    assert main(["eval", *LOCAL, "--samples", str(d), "--real", str(l2i_dir), "--out", str(tmp_path / "ev"),
                 "--inception", str(tiny_inception), "--clip", str(tiny_clip), "--test-fraction", "0.5",
                 "--batch-size", "4"]) == 0
    r = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert r["metrics"]["fid_ll2ie"]["n_samples"] == 4 and r["metrics"]["clip"]["n"] == 4
    assert r["metrics"]["iou_saliency"]["n"] == 4
    for what in ("inception: samples", "CLIP score", "IOU vs classical"):
        assert any(w.startswith(what) and "1 image(s) could not be read" in w and broken.parent.name in w
                   for w in r["warnings"]), what
