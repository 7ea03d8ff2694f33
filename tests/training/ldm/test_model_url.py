"""An exported pipeline committed to a bucket (as `l2i train ldm --out s3://...` commits RUN2/pipeline) is
loaded from its URL: `l2i sample --model s3://.../pipeline` makes what the local dir makes, fetching it once;
a URL without the commit marker, or with a file that differs from it, is refused with one line."""
from __future__ import annotations

import hashlib
from pathlib import Path

from l2i_pipeline.cli import main
from l2i_pipeline.core.storage import open_store
from training.base.runstore import RunStore, fetched


def _run(*args) -> int:
    return main(["sample", "--runner", "local", *map(str, args)])


def _pngs(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.png"))}


def test_sample_from_a_pipeline_in_a_bucket(tiny_pipeline_dir, s3_bucket, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("L2I_RUN_CACHE", str(tmp_path / "cache"))
    RunStore(f"{s3_bucket}/run").push_tree(Path(tiny_pipeline_dir), "pipeline")  # what rank 0 commits
    url = f"{s3_bucket}/run/pipeline"
    common = ["--prompt", "a cat", "--n", 2, "--steps", 2]
    assert _run("--model", tiny_pipeline_dir, *common, "--out", tmp_path / "local") == 0
    assert _run("--model", url, *common, "--out", tmp_path / "remote") == 0
    assert _pngs(tmp_path / "remote") == _pngs(tmp_path / "local") and _pngs(tmp_path / "local")
    first = fetched(url)
    stamp = {p: p.stat().st_mtime_ns for p in first.rglob("*")}
    assert fetched(url) == first and {p: p.stat().st_mtime_ns for p in first.rglob("*")} == stamp  # cached

    capsys.readouterr()
    assert _run("--model", f"{s3_bucket}/run/nothing", *common, "--out", tmp_path / "x") == 2
    assert "not a committed export" in capsys.readouterr().err
    bucket = open_store(f"{s3_bucket}/run")
    bucket.put("pipeline/model_index.json", b"{}")  # changed after its commit
    bucket.put("pipeline.done.json", bucket.get("pipeline.done.json") + b" ")  # a new marker: fetched again
    assert _run("--model", url, *common, "--out", tmp_path / "y") == 2
    assert "does not match its marker" in capsys.readouterr().err


def test_sample_into_a_bucket_resumes_and_holds_the_lock(tiny_pipeline_dir, s3_bucket, tmp_path, monkeypatch,
                                                           capsys):
    # `l2i sample --model s3://.../pipeline --out s3://...`: every file a whole-object put, the index in the
    # bucket, a rerun skips every sample, and a second run into the same --out is refused while one runs
    from l2i_pipeline.core.lock import output_lock

    monkeypatch.setenv("L2I_RUN_CACHE", str(tmp_path / "cache"))
    RunStore(f"{s3_bucket}/run").push_tree(Path(tiny_pipeline_dir), "pipeline")
    common = ["--model", f"{s3_bucket}/run/pipeline", "--prompt", "a cat", "--n", 2, "--steps", 2]
    out = f"{s3_bucket}/samples"
    assert _run(*common, "--out", out) == 0
    assert _run(*common, "--out", tmp_path / "local") == 0
    store = open_store(out)
    local = tmp_path / "local"
    assert {n: hashlib.sha256(store.get(n)).hexdigest() for n in store.find(".png")} == _pngs(local)
    assert not store.exists(".l2i-lock.json") and not [n for n in store.find() if ".tmp" in n]
    import io

    import pyarrow.parquet as pq
    rows = pq.read_table(io.BytesIO(store.get("samples.parquet"))).to_pylist()
    assert len(rows) == 2 and all(p.startswith(out + "/") for r in rows for p in r["paths"])
    capsys.readouterr()
    assert _run(*common, "--out", out) == 0 and "sampled   0" in capsys.readouterr().out
    with output_lock(store, "sample"):
        assert _run(*common, "--out", out) == 2
    assert "is writing to" in capsys.readouterr().err
