"""`--storage-options` on every command that takes a storage URL, and it reaches the store: behaviour on
gs:// (fake-gcs-server) and az:// (Azurite), whose endpoint and credentials exist only in the options.
Skipped per store when its emulator is not installed; the enumeration test always runs."""
import io
import json

import pyarrow.parquet as pq
import pytest
from clicommands import leaf_commands

from l2i_pipeline.cli import build_parser, main
from l2i_pipeline.core.shards import list_output_shards, read_output_index
from l2i_pipeline.core.storage import open_store

# every leaf command, by whether one of its arguments is a storage URL (a new command must be placed here)
URL_COMMANDS = {"download", "synthesize", "stats", "ls", "plan", "annotate pool", "annotate serve", "annotate rank",
                "classifiers train", "classifiers eval", "score", "filter", "train ae", "train ldm", "encode",
                "eval", "eval prompts", "eval compare", "export", "sample"}
LOCAL_ONLY = {"demo", "models check", "annotate export",  # --out/--model: local paths
              *(f"annotate users {c}" for c in ("add", "list", "revoke", "rotate", "remove", "restore", "set-role"))}


def test_every_command_that_takes_a_url_accepts_storage_options():
    commands = leaf_commands(build_parser())
    assert set(commands) == URL_COMMANDS | LOCAL_ONLY, "place the new command in URL_COMMANDS or LOCAL_ONLY"
    has = {name for name, p in commands.items() if "--storage-options" in p._option_string_actions}
    assert has == URL_COMMANDS


def test_bad_storage_options_are_one_clear_error_before_any_work(tmp_path, capsys):
    for argv in (["score", "--input", str(tmp_path), "--runner", "local"],
                 ["filter", "--input", str(tmp_path), "--output", str(tmp_path / "out")],
                 ["plan", "--inputs", "1000", "--shards", str(tmp_path)],
                 ["eval", "prompts", "--real", str(tmp_path), "--out", str(tmp_path / "p.parquet")]):
        assert main([*argv, "--storage-options", "{not json"]) == 2
        err = capsys.readouterr().err
        assert "--storage-options is not valid JSON" in err, (argv, err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "p.parquet").exists()


@pytest.fixture
def l2i_in_bucket(emulated_store, raw_dir, capsys):
    """L2I(U) shards (12 rows, 11 ok) written by `l2i synthesize` into a fresh bucket; (url, options)."""
    opts = emulated_store.options
    url = f"{emulated_store.new_bucket()}/l2i"
    assert main(["synthesize", "--input", str(raw_dir), "--output", url, "--runner", "local", "--storage-options",
                 opts, "--set", "resolution=96", "--set", "saliency.backend=classical"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    return url, opts


def test_ls_and_plan_read_the_bucket_through_the_options(l2i_in_bucket, capsys):
    url, opts = l2i_in_bucket
    assert main(["ls", url, "--storage-options", opts]) == 0
    listed = capsys.readouterr().out.split()
    assert len(listed) == len(list_output_shards(open_store(url, opts))) > 0
    assert all(u.startswith(url) and u.endswith(".tar") for u in listed)
    assert main(["plan", "--inputs", "1000", "--shards", url, "--storage-options", opts]) == 0
    assert f"shards of {url}" in capsys.readouterr().out


def test_filter_and_annotate_read_and_write_the_bucket_through_the_options(l2i_in_bucket, tmp_path, capsys):
    from l2i_pipeline.core.sidecars import write_sidecar

    url, opts = l2i_in_bucket
    bucket = url.rsplit("/", 1)[0]
    store = open_store(url, opts)
    ok = [r for r in read_output_index(store).to_pylist() if r["status"] == "ok"]
    by_shard: dict[str, dict] = {}
    for i, r in enumerate(ok):  # every other sample passes
        by_shard.setdefault(r["shard"], {})[r["key"]] = {"mask_score": 0.9 if i % 2 else 0.1}
    scores = open_store(f"{bucket}/scores", opts)
    for name in list_output_shards(store):
        write_sidecar(scores, name, by_shard.get(name, {}), {"classifiers": {"mask": {"threshold": 0.5}}})
    out_url = f"{bucket}/kept"
    assert main(["filter", "--input", url, "--output", out_url, "--scores-dir", scores.url, "--min-mask-score",
                 "0.5", "--storage-options", opts]) == 0, capsys.readouterr().err
    kept = open_store(out_url, opts)
    report = json.loads(kept.get("filter_report.json"))
    assert report["kept"] == len(ok) // 2 and not kept.exists("_lock.json")
    assert sum(r["status"] == "ok" for n in list_output_shards(kept)
               for r in pq.read_table(io.BytesIO(kept.get(f"{n}.parquet"))).to_pylist()) == len(ok) // 2

    db = tmp_path / "labels.db"
    assert main(["annotate", "pool", "--samples", url, "--db", str(db), "--size", "6", "--test", "2",
                 "--storage-options", opts]) == 0, capsys.readouterr().err
    assert main(["annotate", "rank", "--db", str(db), "--scores", scores.url, "--storage-options", opts]) == 0
    assert "mask: 6 pool samples scored" in capsys.readouterr().out


def test_eval_prompts_reads_real_through_the_options(l2i_in_bucket, tmp_path, capsys):
    url, opts = l2i_in_bucket
    out = tmp_path / "prompts.parquet"
    assert main(["eval", "prompts", "--real", url, "--out", str(out), "--test-fraction", "0.5",
                 "--storage-options", opts]) == 0, capsys.readouterr().err
    assert pq.read_table(out).num_rows > 0
