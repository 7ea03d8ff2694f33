"""`l2i score` (Ray and local) and `l2i filter` on tiny shards: sidecars, resume, byte-identical copies."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from l2i_pipeline.cli import main
from l2i_pipeline.core import shards
from l2i_pipeline.core.sample import Sample
from l2i_pipeline.core.sidecars import read_sidecar, sidecar_path
from l2i_pipeline.formats.decode import decode_image, decode_mask
from stages.config import Config, ConfigError


@pytest.fixture(scope="module")
def scored(tmp_path_factory, trained, make_l2iu):
    """3 shards x (4 ok + 1 rejected) scored once through `l2i score` on a 2-CPU Ray."""
    import ray

    d = tmp_path_factory.mktemp("tiny") / "l2iu"
    make_l2iu(d, n_shards=3, per_shard=4, seed=5, rejected_per_shard=1)
    argv = ["score", "--input", str(d), "--mask-classifier", str(trained["mask"]),
            "--inpaint-classifier", str(trained["inpaint"]), "--device", "cpu", "--batch-size", "3",
            "--num-cpus", "2"]
    try:
        assert main(argv) == 0
    finally:
        ray.shutdown()
    return d, argv


def test_score_writes_sidecars_and_resumes(scored):
    d, argv = scored
    names = shards.list_output_shards(d)
    assert len(names) == 3
    first = {}
    for n in names:
        s = read_sidecar(sidecar_path(d, n))
        assert sorted(s) == [k for k, _ in shards.iter_output_samples(d, n)]  # ok samples only, all of them
        for v in s.values():
            assert 0.0 <= v["mask_score"] <= 1.0 and 0.0 <= v["inpaint_score"] <= 1.0
        first[n] = s
    provenance = json.loads(pq.read_schema(sidecar_path(d, names[0])).metadata[b"l2i_scores"])
    assert provenance["classifiers"]["mask"]["encoding"] in ("pair", "stem4")
    mtimes = {n: sidecar_path(d, n).stat().st_mtime_ns for n in names}
    local = argv[:-2] + ["--runner", "local"]
    assert main(local) == 0  # everything done: nothing rescored
    assert {n: sidecar_path(d, n).stat().st_mtime_ns for n in names} == mtimes
    sidecar_path(d, names[1]).unlink()  # as if the job died before this shard's sidecar
    assert main(local) == 0
    assert sidecar_path(d, names[0]).stat().st_mtime_ns == mtimes[names[0]]
    again = read_sidecar(sidecar_path(d, names[1]))
    for k, v in first[names[1]].items():  # the in-process runner agrees with the Ray actors
        assert again[k] == pytest.approx(v, abs=1e-5)


def test_score_refuses_a_second_run_into_its_sidecar_dir(scored, tmp_path, capsys):
    from l2i_pipeline.core.lock import LOCK, output_lock
    from l2i_pipeline.core.storage import open_store

    d, argv = scored
    local = argv[:-2] + ["--runner", "local", "--scores-dir", str(tmp_path / "scores")]
    with output_lock(open_store(tmp_path / "scores"), "score"):
        assert main(local) == 2
        assert "is writing to" in capsys.readouterr().err
        assert not list((tmp_path / "scores").glob("*_scores.parquet"))
    assert main(local) == 0 and not (tmp_path / "scores" / LOCK).exists()
    assert len(list((tmp_path / "scores").glob("*_scores.parquet"))) == 3


def _kept_by_scores(d, mmin, imin):
    kept = set()
    for n in shards.list_output_shards(d):
        kept |= {k for k, v in read_sidecar(sidecar_path(d, n)).items()
                 if v["mask_score"] >= mmin and v["inpaint_score"] >= imin}
    return kept


def test_filter_keeps_by_threshold_copies_bytes_and_reruns_cheaply(scored, tmp_path):
    d, _ = scored
    all_scores = [v for n in shards.list_output_shards(d) for v in read_sidecar(sidecar_path(d, n)).values()]
    mmin = float(np.median([v["mask_score"] for v in all_scores]))
    out = tmp_path / "l2i"
    argv = ["filter", "--input", str(d), "--output", str(out), "--min-mask-score", str(mmin),
            "--min-inpaint-score", "0"]
    assert main(argv) == 0
    expected = _kept_by_scores(d, mmin, 0.0)
    assert 0 < len(expected) < 12
    kept, rows = set(), []
    for n in shards.list_output_shards(out):
        src = dict(shards.iter_output_samples(d, n))
        for k, members in shards.iter_output_samples(out, n):
            assert members == src[k]  # same members, same bytes
            kept.add(k)
        rows += shards.read_output_index(out, [n]).to_pylist()
    assert kept == expected
    assert len(rows) == 15  # every input row accounted for
    reasons = {r["key"]: r["reason"] for r in rows if r["status"] == "rejected"}
    assert sum(r == "layers:mask_too_small" for r in reasons.values()) == 3
    assert sum(r == "filter:low_mask_score" for r in reasons.values()) == 12 - len(expected)
    ok_meta = [json.loads(r["meta"]) for r in rows if r["status"] == "ok"]
    assert all(m["mask_score"] >= mmin for m in ok_meta)
    report = json.loads((out / "filter_report.json").read_text())
    assert report["kept"] == len(expected) and report["rows"] == 15
    assert report["dropped_by_reason"]["filter:low_mask_score"] == 12 - len(expected)

    stats = out / f"{shards.list_output_shards(out)[0]}_stats.json"
    mtime = stats.stat().st_mtime_ns
    assert main(argv) == 0  # same thresholds: every shard skipped
    assert stats.stat().st_mtime_ns == mtime
    strict = argv[:-1] + ["0.999999"]  # other thresholds, same output dir: shards rewritten
    assert main(strict) == 0
    report = json.loads((out / "filter_report.json").read_text())
    assert report["kept"] == len(_kept_by_scores(d, mmin, 0.999999)) and report["shards_skipped"] == 0

    dry = tmp_path / "dry"
    assert main(["filter", "--input", str(d), "--output", str(dry), "--min-inpaint-score", "0.5", "--dry-run"]) == 0
    assert not dry.exists()


def test_filter_without_scores_is_a_clear_error(tmp_path, capsys, make_l2iu):
    make_l2iu(tmp_path / "u", n_shards=1, per_shard=2, seed=9)
    assert main(["filter", "--input", str(tmp_path / "u"), "--output", str(tmp_path / "o"),
                 "--min-mask-score", "0.5"]) == 2
    assert "l2i score" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_filter_uses_inline_scores(tmp_path, make_l2iu):
    make_l2iu(tmp_path / "u", n_shards=2, per_shard=4, seed=3, inline_scores=True)  # mask_score 0.9 good, 0.1 bad
    assert main(["filter", "--input", str(tmp_path / "u"), "--output", str(tmp_path / "o"),
                 "--min-mask-score", "0.5"]) == 0
    report = json.loads((tmp_path / "o" / "filter_report.json").read_text())
    assert report["kept"] == 4 and report["dropped_by_reason"] == {"filter:low_mask_score": 4}


def test_score_stage_writes_the_same_scores_into_meta(scored, trained):
    from stages.score import ScoreStage

    d, _ = scored
    name = shards.list_output_shards(d)[0]
    samples = []
    for key, m in shards.iter_output_samples(d, name):
        samples.append(Sample(key, name, image=decode_image(m["jpg"]), bg=decode_image(m["bg.png"]),
                              mask=decode_mask(m["mask.png"])))
    samples.append(Sample("gone", name, status="rejected", reason="x"))
    cfg = Config()
    cfg.score.mask_classifier, cfg.score.inpaint_classifier = str(trained["mask"]), str(trained["inpaint"])
    cfg.score.device = "cpu"
    stage = ScoreStage(cfg)
    assert stage.resources.num_actors is None and stage.resources.batch_size == cfg.score.batch_size
    out = stage.run(samples)
    side = read_sidecar(sidecar_path(d, name))
    for s in out[:-1]:
        assert s.ok and s.meta["mask_score"] == pytest.approx(side[s.key]["mask_score"], abs=1e-5)
        assert s.meta["inpaint_score"] == pytest.approx(side[s.key]["inpaint_score"], abs=1e-5)
    assert "mask_score" not in out[-1].meta
    cfg.score.mask_classifier = str(d / "nope")
    with pytest.raises(ConfigError, match="nope"):
        ScoreStage(cfg)


def test_synthesize_scores_inline_and_filter_reads_them(trained, tmp_path):
    """`l2i synthesize` with score.* set: scores land in each sample's json; `l2i filter` uses them."""
    import json

    from rawshards import make_rows, write_raw_shard

    from l2i_pipeline.cli import main

    write_raw_shard(tmp_path / "raw", "00000", make_rows(4))
    args = ["synthesize", "--input", str(tmp_path / "raw"), "--output", str(tmp_path / "u"), "--runner", "local",
            "--set", "resolution=96", "--set", f"score.mask_classifier={trained['mask']}",
            "--set", f"score.inpaint_classifier={trained['inpaint']}", "--set", "score.device=cpu"]
    assert main(args) == 0
    rows = shards.read_output_index(tmp_path / "u").to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(0 <= json.loads(r["meta"])["mask_score"] <= 1 for r in ok)
    assert main(["filter", "--input", str(tmp_path / "u"), "--output", str(tmp_path / "f"),
                 "--min-mask-score", "0", "--min-inpaint-score", "0"]) == 0
    kept = [r for r in shards.read_output_index(tmp_path / "f").to_pylist() if r["status"] == "ok"]
    assert {r["key"] for r in kept} == {r["key"] for r in ok}
    bad = args[:-6] + ["--set", f"score.mask_classifier={tmp_path / 'missing'}"]
    bad[bad.index(str(tmp_path / "u"))] = str(tmp_path / "u2")
    assert main(bad) == 2 and not (tmp_path / "u2").exists()  # fails before any work


def test_score_on_one_cpu_completes(trained, make_l2iu, tmp_path):
    """Issue 25 item 15: `l2i score --num-cpus 1` used to sit at "1.1/1 CPU" forever (a 1-CPU read task
    beside the actor's 0.1); the read tasks now ask for what is left. A subprocess, so a hang fails the test."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    d = tmp_path / "l2iu"
    make_l2iu(d, n_shards=3, per_shard=4, seed=5)
    argv = ["score", "--input", str(d), "--mask-classifier", str(trained["mask"]), "--inpaint-classifier",
            str(trained["inpaint"]), "--device", "cpu", "--batch-size", "3", "--num-cpus", "1"]
    r = subprocess.run([sys.executable, "-m", "l2i_pipeline.cli", *argv], cwd=root, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(root)}, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert all(sidecar_path(d, n).exists() for n in shards.list_output_shards(d))


def test_score_with_wrong_credentials_is_one_line(trained, monkeypatch, capsys):
    """Issue 25 item 17: a 403 from the store was a 55-line PermissionError traceback."""
    from s3server import S3Server

    server = S3Server(auth=True)  # moto checking credentials: it knows none, so every request is Forbidden
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        assert main(["score", "--input", "s3://bucket/l2iu", "--mask-classifier", str(trained["mask"]),
                     "--runner", "local", "--device", "cpu"]) == 2
    finally:
        server.stop()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "access denied" in err[0] and "s3://bucket/l2iu" in err[0]


def test_filter_refuses_a_store_without_exclusive_creates_unless_no_lock(tmp_path, make_l2iu, capsys):
    from fakestores import new_url

    from l2i_pipeline.core.storage import open_store

    make_l2iu(tmp_path / "u", n_shards=1, per_shard=4, seed=3, inline_scores=True)
    argv = ["filter", "--input", str(tmp_path / "u"), "--output", new_url(), "--min-mask-score", "0.5"]
    assert main(argv) == 2
    assert "does not support exclusive creates" in capsys.readouterr().err
    assert main([*argv, "--no-lock"]) == 0
    assert json.loads(open_store(argv[4]).get("filter_report.json"))["kept"] == 2
