"""The data commands on an S3-compatible server (moto, 127.0.0.1): parquet in a bucket -> download ->
synthesize -> stats, all through s3:// URLs, credentials only from the environment."""
import json

import pytest

from l2i_pipeline.cli import main
from l2i_pipeline.core.shards import read_output_index
from l2i_pipeline.core.storage import open_store
from l2i_pipeline.demo.httpserve import LoopbackServer
from l2i_pipeline.demo.inputs import photos, write_files, write_laion_parquet


@pytest.mark.slow
def test_download_synthesize_stats_through_a_bucket(tmp_path, s3_bucket, capsys):
    files = photos()[:3]
    write_files(tmp_path / "www", files)
    with LoopbackServer(tmp_path / "www") as server:
        urls = [server.url(f.filename) for f in files]
        parquet = write_laion_parquet(tmp_path / "in.parquet", urls, [f.description for f in files])
        open_store(f"{s3_bucket}/laion").put("part0.parquet", parquet.read_bytes())
        assert main(["download", "--input", f"{s3_bucket}/laion", "--output", f"{s3_bucket}/raw",
                     "--allow-private-network", "--processes", "1", "--threads", "2", "--raw-shard-size", "2"]) == 0
    raw = open_store(f"{s3_bucket}/raw")
    assert {"00000.tar", "00000.parquet", "00000_stats.json", "00001.tar"} <= set(raw.list())
    assert main(["synthesize", "--input", f"{s3_bucket}/raw", "--output", f"{s3_bucket}/l2i", "--runner", "local",
                 "--set", "resolution=128"]) == 0
    rows = read_output_index(f"{s3_bucket}/l2i").to_pylist()
    assert sorted(r["url"] for r in rows) == sorted(urls)
    run = json.loads(open_store(f"{s3_bucket}/l2i").get("run.json"))
    assert run["input"] == f"{s3_bucket}/raw" and "testing" not in json.dumps(run)  # no credentials recorded
    capsys.readouterr()
    assert main(["stats", f"{s3_bucket}/l2i", "--max-masks", "5"]) == 0
    assert "stats.png" in capsys.readouterr().out and open_store(f"{s3_bucket}/l2i").exists("stats.png")


def test_a_second_job_into_the_same_bucket_output_is_refused(s3_bucket, raw_dir, capsys):
    out = open_store(f"{s3_bucket}/l2i")
    assert out.create_exclusive("_lock.json", json.dumps({"host": "elsewhere", "pid": 1, "command": "synthesize",
                                                          "refreshed": 1e12}).encode())
    rc = main(["synthesize", "--input", str(raw_dir), "--output", out.url, "--runner", "local"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "another `l2i synthesize` is writing to s3://" in err and "(host elsewhere, pid 1)" in err
    out.put("_lock.json", json.dumps({"host": "elsewhere", "pid": 1, "refreshed": 0}).encode())  # stale
    assert main(["synthesize", "--input", str(raw_dir), "--output", out.url, "--runner", "local",
                 "--set", "resolution=96"]) == 0
    assert not out.exists("_lock.json")
