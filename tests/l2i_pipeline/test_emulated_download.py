"""download -> synthesize -> stats on gs:// (fake-gcs-server) and az:// (Azurite), 127.0.0.1, credentials only
in --storage-options: the same chain test_s3_commands.py runs on s3://, including img2dataset's writes
through gcsfs / adlfs."""
import json

import pytest

from l2i_pipeline.cli import main
from l2i_pipeline.core.shards import read_output_index
from l2i_pipeline.core.storage import open_store
from l2i_pipeline.demo.httpserve import LoopbackServer
from l2i_pipeline.demo.inputs import photos, write_files, write_laion_parquet


@pytest.mark.slow
def test_download_synthesize_stats_through_an_emulated_bucket(tmp_path, emulated_store, capsys):
    bucket, opts = emulated_store.new_bucket(), emulated_store.options
    so = ["--storage-options", opts]
    files = photos()[:3]
    write_files(tmp_path / "www", files)
    with LoopbackServer(tmp_path / "www") as server:
        urls = [server.url(f.filename) for f in files]
        parquet = write_laion_parquet(tmp_path / "in.parquet", urls, [f.description for f in files])
        open_store(f"{bucket}/laion", opts).put("part0.parquet", parquet.read_bytes())
        assert main(["download", "--input", f"{bucket}/laion", "--output", f"{bucket}/raw", *so,
                     "--allow-private-network", "--processes", "1", "--threads", "2", "--raw-shard-size", "2"]) == 0
    raw = open_store(f"{bucket}/raw", opts)
    assert {"00000.tar", "00000.parquet", "00000_stats.json", "00001.tar"} <= set(raw.list())
    assert main(["synthesize", "--input", f"{bucket}/raw", "--output", f"{bucket}/l2i", "--runner", "local", *so,
                 "--set", "resolution=128"]) == 0
    out = open_store(f"{bucket}/l2i", opts)
    rows = read_output_index(out).to_pylist()
    assert sorted(r["url"] for r in rows) == sorted(urls)
    assert opts not in json.dumps(json.loads(out.get("run.json")))  # no credentials recorded
    capsys.readouterr()
    assert main(["stats", f"{bucket}/l2i", "--max-masks", "5", *so]) == 0
    assert "stats.png" in capsys.readouterr().out and out.exists("stats.png")
