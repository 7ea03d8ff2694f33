"""User mistakes in `l2i annotate` are one-line errors (exit 2, no traceback); export records its provenance."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from annotations import db
from annotations.queue import Settings, next_items, record
from l2i_pipeline.cli import main


def one_line_error(capsys, argv: list[str], expect: str) -> None:
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (argv, out, err)
    assert err.startswith("l2i annotate: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert expect in err, err


def test_bad_db_paths(tmp_path, shards_dir, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    for argv in (["users", "add", "a"], ["users", "list"], ["export", "--out", str(tmp_path / "o.jsonl")],
                 ["serve"], ["rank", "--scores", str(tmp_path)]):
        one_line_error(capsys, ["annotate", *argv, "--db", str(text)], "is not an SQLite labels database")
    one_line_error(capsys, ["annotate", "pool", "--samples", str(shards_dir), "--db", str(text)],
                   "is not an SQLite labels database")
    one_line_error(capsys, ["annotate", "pool", "--samples", str(shards_dir), "--db", str(tmp_path / "no/dir/x.db")],
                   "does not exist")
    assert not (tmp_path / "no").exists()
    one_line_error(capsys, ["annotate", "serve", "--db", str(tmp_path)], "is a directory")
    one_line_error(capsys, ["annotate", "pool", "--samples", str(shards_dir), "--db", str(tmp_path / "p.db"),
                            "--size", "5", "--test", "9"], "--test <= --size")
    one_line_error(capsys, ["annotate", "pool", "--samples", str(tmp_path / "missing"), "--db",
                            str(tmp_path / "q.db")], "samples directory not found")
    assert not list(tmp_path.glob("q.db*"))  # issue 25 #14: a failed pool leaves no schema-only file
    assert not list(tmp_path.glob("p.db*"))
    empty_shards = tmp_path / "empty_shards"
    empty_shards.mkdir()
    assert main(["annotate", "pool", "--samples", str(empty_shards), "--db", str(tmp_path / "e.db")]) == 1
    assert not list(tmp_path.glob("e.db*"))  # nothing drawn: no file either


def test_bad_serve_options(env, capsys):
    for argv, expect in ((["--port", "99999"], "--port must be between 1 and 65535"),
                         (["--port", "0"], "--port must be between"),
                         (["--overlap", "1.5"], "--overlap must be between 0 and 1"),
                         (["--lease-minutes", "0"], "--lease-minutes must be positive"),
                         (["--mask-classifier", str(env.db_path.parent / "nope")], "checkpoint not found"),
                         (["--scores", str(env.db_path.parent / "nope")], "scores directory not found")):
        one_line_error(capsys, ["annotate", "serve", "--db", str(env.db_path), *argv], expect)
    one_line_error(capsys, ["annotate", "rank", "--db", str(env.db_path)], "give --mask-classifier")


def test_export_refuses_directories_and_unknown_extensions(env, tmp_path, capsys):
    dbp = str(env.db_path)
    for out, extra, expect in ((tmp_path, [], "is a directory"),
                               (tmp_path / "labels.csv", [], "unknown extension '.csv'"),
                               (tmp_path / "labels", [], "unknown extension '(none)'"),
                               (tmp_path / "labels.jsonl", ["--format", "parquet"], "contradicts")):
        one_line_error(capsys, ["annotate", "export", "--db", dbp, "--out", str(out), *extra], expect)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l2iu", "labels.sqlite"]  # nothing written


def test_export_records_pool_seed_strategy_and_counts(env, tmp_path, capsys):
    conn = db.connect(env.db_path)
    with db.write(conn):
        db.audit(conn, "serve", strategy="uncertain", overlap=0.1)
    s = Settings(overlap=0.0)
    for i, item in enumerate(next_items(conn, 1, "mask", 5, s)):
        record(conn, 1, "mask", item.key, "good" if i < 3 else "bad", s)
    for fmt in ("jsonl", "parquet"):
        out = tmp_path / f"labels.{fmt}"
        assert main(["annotate", "export", "--db", str(env.db_path), "--out", str(out)]) == 0
        meta = json.loads((tmp_path / f"labels.{fmt}.meta.json").read_text())
        assert meta["pool"]["seed"] == "0" and meta["pool"]["train_samples"] + meta["pool"]["test_samples"] == 12
        assert meta["strategy"] == "uncertain" and meta["strategies_served"] == ["uncertain"]
        assert meta["labels"]["mask"] == {"good": 3, "bad": 2, "ties": 0} and meta["rows"] == 5
    embedded = json.loads(pq.read_schema(tmp_path / "labels.parquet").metadata[b"l2i_export"])
    assert embedded["labels"] == meta["labels"] and embedded["pool"] == meta["pool"]


@pytest.mark.parametrize("bad", ["", " x", "a" * 65])
def test_bad_user_name(env, capsys, bad):
    one_line_error(capsys, ["annotate", "users", "add", bad, "--db", str(env.db_path)], "bad user name")
