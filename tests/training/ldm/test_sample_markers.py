"""`l2i sample`'s per-sample markers vouch for each file's size and sha256; a torn sample is redone."""
import hashlib
import json

import pyarrow.parquet as pq

from l2i_pipeline.cli import main

SCHEMA = ["id", "prompt", "prompt_index", "seed", "steps", "guidance", "precision", "model", "dir", "paths"]


def _run(*argv):
    return main(["sample", "--runner", "local", *map(str, argv)])


def test_markers_record_digests_and_a_torn_sample_is_redone(tiny_pipeline_dir, tmp_path, capsys):
    out = tmp_path / "s"
    args = ["--model", tiny_pipeline_dir, "--prompt", "a dog", "--out", out, "--n", 3, "--steps", 1]
    assert _run(*args) == 0
    table = pq.read_table(out / "samples.parquet")
    assert table.column_names == SCHEMA and table.num_rows == 3
    ids = sorted(table.column("id").to_pylist())
    meta = json.loads((out / ids[0] / "meta.json").read_text())
    files = {p.name for p in (out / ids[0]).iterdir()} - {"meta.json"}
    assert set(meta["files"]) == files
    for name, rec in meta["files"].items():
        data = (out / ids[0] / name).read_bytes()
        assert rec == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    whole = {p: p.read_bytes() for p in (out / ids[2]).iterdir()}
    before = (out / ids[2] / "fg.png").stat().st_mtime_ns
    fg = out / ids[0] / "fg.png"
    good = fg.read_bytes()
    fg.write_bytes(good[:-5])  # a short write: another size than its marker says
    (out / ids[1] / "mask.png").unlink()  # a lost file
    capsys.readouterr()
    assert _run(*args) == 0
    assert "sampled   2" in capsys.readouterr().out
    assert fg.read_bytes() == good and (out / ids[1] / "mask.png").is_file()
    assert (out / ids[2] / "fg.png").stat().st_mtime_ns == before
    assert {p: p.read_bytes() for p in (out / ids[2]).iterdir()} == whole
    assert pq.read_table(out / "samples.parquet").column_names == SCHEMA
