"""Issue 25 item 17: one line instead of a traceback for wrong credentials (moto with authentication on),
an unreachable endpoint (a closed port on 127.0.0.1) and a dataset `stats` cannot write its plot into.

As root (the tests' user) chmod does not make a directory read-only, so the read-only case puts a
directory where `stats.png` would go: writing it fails with a real OSError, as on a read-only mount."""
import pytest
from s3server import S3Server
from serverproc import free_port

from l2i_pipeline.cli import main
from l2i_pipeline.engine.synthesize import synthesize
from stages.config import load_config

CFG = ["resolution=96", "output_shard_size=4", "layers.dilate_kernel=5"]


@pytest.fixture(scope="module")
def forbidding():
    server = S3Server(auth=True)
    yield server
    server.stop()


def _one_line(capsys, command: str) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"l2i {command}: error: "), err
    return err[0]


@pytest.mark.parametrize("argv", [
    ["synthesize", "--input", "s3://bucket/raw", "--output", "OUT", "--runner", "local"],
    ["stats", "s3://bucket/l2i"],
    ["filter", "--input", "s3://bucket/l2i", "--output", "OUT", "--min-mask-score", "0.5"],
    ["annotate", "pool", "--samples", "s3://bucket/l2i", "--db", "OUT.sqlite"],
])
def test_wrong_credentials_are_one_line(argv, forbidding, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", forbidding.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    argv = [str(tmp_path / "out") + a[3:] if a.startswith("OUT") else a for a in argv]
    assert main(argv) == 2
    line = _one_line(capsys, argv[0])
    assert "s3://bucket/" in line and "access denied" in line and "credentials" in line


def test_an_unreachable_endpoint_fails_fast_with_one_line(monkeypatch, capsys, caplog):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert main(["stats", "s3://nowhere/l2i"]) == 2
    assert "cannot reach the store" in _one_line(capsys, "stats")
    assert not [r for r in caplog.records if "retry" in r.getMessage()]  # never answered: not retried


def test_stats_on_a_dataset_it_cannot_write_to_still_reports(raw_dir, tmp_path, capsys):
    out = tmp_path / "l2i"
    synthesize(raw_dir, out, load_config(None, CFG), runner="local")
    (out / "stats.png").mkdir()  # writing the default plot fails, as on a read-only dataset
    assert main(["stats", str(out)]) == 0
    captured = capsys.readouterr()
    assert "shards: 4   samples: 12" in captured.out and "plots: not written" in captured.out
    warning = [line for line in captured.err.splitlines() if line.strip()]
    assert len(warning) == 1 and "stats.png not written" in warning[0] and "--plot" in warning[0]
    assert main(["stats", str(out), "--plot", str(out / "stats.png")]) == 2  # asked for: an error
    assert "cannot write --plot" in _one_line(capsys, "stats")
