"""`l2i sample` end to end on a tiny pipeline: files, index, resume, refusals, Ray runner."""
import json
import shutil

import pyarrow.parquet as pq
import pytest

from l2i_pipeline.cli import main


def _run(*argv):
    return main(["sample", "--runner", "local", *map(str, argv)])


def test_sample_files_index_and_resume(tiny_pipeline_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a dog on the grass\n\na cat\n")
    out = tmp_path / "samples"
    args = ["--model", tiny_pipeline_dir, "--prompts", prompts, "--out", out, "--n", 2, "--steps", 2,
            "--batch-size", 3]
    assert _run(*args) == 0
    table = pq.read_table(out / "samples.parquet").to_pylist()
    assert len(table) == 4 and {r["prompt"] for r in table} == {"a dog on the grass", "a cat"}
    assert sorted(r["seed"] for r in table) == [0, 0, 1, 1]
    d = out / table[0]["id"]
    names = {p.name for p in d.iterdir()}
    assert {"fg.png", "bg.png", "mask.png", "composite.png", "fg_rgba.png", "layers.ora", "meta.json"} <= names
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    capsys.readouterr()
    assert _run(*args) == 0
    assert "sampled   0" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before
    # a lost sample dir is redone, nothing else
    shutil.rmtree(out / table[0]["id"])
    assert _run(*args[:-2], "--batch-size", 1) == 0
    assert len(pq.read_table(out / "samples.parquet")) == 4
    assert (out / table[0]["id"] / "meta.json").is_file()


def test_refusals(tiny_pipeline_dir, tmp_path, capsys):
    out = tmp_path / "s"
    base = ["--model", tiny_pipeline_dir, "--prompt", "a dog", "--out", out, "--n", 1, "--steps", 1]
    for bad, msg in [(["--guidance", 0.5], "guidance"), (["--steps", 0], "steps"), (["--format", "gif"], "format")]:
        capsys.readouterr()
        assert _run(*base, *bad) == 2
        assert msg in capsys.readouterr().err
    assert _run("--model", str(tiny_pipeline_dir), "--prompt", "  ", "--out", str(out)) == 2
    assert "empty" in capsys.readouterr().err
    assert _run("--model", str(tmp_path / "none"), "--prompt", "x", "--out", str(out)) == 2
    assert "model_index.json" in capsys.readouterr().err
    assert _run(*base) == 0
    assert _run(*base[:-2], "--steps", 3) == 2
    assert "other settings (steps" in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(tiny_pipeline_dir, other)
    index = json.loads((other / "model_index.json").read_text())
    (other / "model_index.json").write_text(json.dumps({**index, "latent_scale": 0.25}))
    assert _run("--model", other, *base[2:]) == 2
    assert "another model" in capsys.readouterr().err


def test_prompts_from_parquet_and_empty_file(tmp_path):
    import pyarrow as pa

    from l2i_pipeline.core.errors import InputError
    from training.sampling.run import read_prompts

    pq.write_table(pa.table({"caption": ["a dog", None, " ", "a cat"]}), tmp_path / "p.parquet")
    assert read_prompts(prompts_file=str(tmp_path / "p.parquet")) == ["a dog", "a cat"]
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(InputError, match="no prompts"):
        read_prompts(prompts_file=str(tmp_path / "empty.txt"))


@pytest.mark.slow
def test_ray_runner_matches_local(tiny_pipeline_dir, tmp_path):
    import ray

    common = ["--model", tiny_pipeline_dir, "--prompt", "a dog", "--n", 3, "--steps", 2, "--batch-size", 2]
    assert _run(*common, "--out", tmp_path / "local") == 0
    try:
        assert _run(*common, "--out", tmp_path / "ray", "--runner", "ray", "--actors", 1, "--num-cpus", 2) == 0
    finally:
        ray.shutdown()
    for p in sorted((tmp_path / "local").glob("*/fg_rgba.png")):
        assert (tmp_path / "ray" / p.parent.name / p.name).read_bytes() == p.read_bytes()


def test_a_sample_left_unwritten_is_named_and_exits_1(tiny_pipeline_dir, tmp_path, capsys, monkeypatch):
    from training.sampling import run

    real = run.SampleWorker.run
    monkeypatch.setattr(run.SampleWorker, "run", lambda self, items: real(self, items[:-1]))  # drops the last
    args = ["--model", tiny_pipeline_dir, "--prompt", "a dog", "--out", tmp_path / "s", "--n", 2, "--steps", 1,
            "--batch-size", 2]
    assert _run(*args) == 1
    out = capsys.readouterr().out
    assert "sampled   1" in out and "not written: 000000_" in out and "_s1" in out
    monkeypatch.setattr(run.SampleWorker, "run", real)
    assert _run(*args) == 0 and "sampled   1" in capsys.readouterr().out
