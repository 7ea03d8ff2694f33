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


AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_PROFILE")


@pytest.fixture
def options_only(s3_server, monkeypatch, tmp_path) -> str:
    """--storage-options JSON holding the endpoint and credentials; none in the environment or config files."""
    for k in AWS_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return json.dumps({"endpoint_url": s3_server.endpoint, "key": "testing", "secret": "testing",
                       "client_kwargs": {"region_name": "us-east-1"}})


def test_synthesize_with_credentials_only_in_storage_options(s3_bucket, raw_dir, options_only, capsys):
    out = f"{s3_bucket}/l2i"
    assert main(["synthesize", "--input", str(raw_dir), "--output", out, "--runner", "local",
                 "--storage-options", options_only, "--set", "resolution=96"]) == 0, capsys.readouterr().err
    assert len(read_output_index(open_store(out, options_only)).to_pylist()) == 12
    assert main(["stats", out, "--max-masks", "5", "--storage-options", options_only]) == 0


def test_download_pre_flight_uses_storage_options(tmp_path, s3_bucket, options_only, capsys):
    """The write check passes with the options' credentials; the next check (the input) is what fails."""
    rc = main(["download", "--input", str(tmp_path / "missing.parquet"), "--output", f"{s3_bucket}/raw",
               "--storage-options", options_only])
    err = capsys.readouterr().err
    assert rc == 2 and "input not found" in err and "cannot write" not in err, err


@pytest.mark.slow
def test_download_with_credentials_only_in_storage_options(tmp_path, s3_bucket, options_only, capsys):
    files = photos()[:2]
    write_files(tmp_path / "www", files)
    with LoopbackServer(tmp_path / "www") as server:
        urls = [server.url(f.filename) for f in files]
        parquet = write_laion_parquet(tmp_path / "in.parquet", urls, [f.description for f in files])
        rc = main(["download", "--input", str(parquet), "--output", f"{s3_bucket}/raw", "--storage-options",
                   options_only, "--allow-private-network", "--processes", "1", "--threads", "2"])
    assert rc == 0, capsys.readouterr().err
    raw = open_store(f"{s3_bucket}/raw", options_only)
    assert {"00000.tar", "00000.parquet", "00000_stats.json"} <= set(raw.list())
