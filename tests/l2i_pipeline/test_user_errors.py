"""Issue 17: every user mistake is one line `l2i CMD: error: ...` and exit code 2, never a traceback."""
import pytest
from rawshards import make_rows, write_raw_shard

from l2i_pipeline.cli import main


@pytest.fixture
def raw(tmp_path):
    write_raw_shard(tmp_path / "raw", "00000", make_rows(2))
    return tmp_path / "raw"


def _one_line_error(capsys, argv, *words):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith(f"l2i {argv[0]}: error: "), err
    for w in words:
        assert w in err, err


def test_config_files_that_are_not_yaml(tmp_path, raw, capsys):
    out = str(tmp_path / "o")
    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)))
    _one_line_error(capsys, ["synthesize", "--input", str(raw), "--output", out, "--config",
                             str(tmp_path / "bin.yaml")], "not text")
    (tmp_path / "bad.yaml").write_text("layers: {threshold: 0.2\n")
    _one_line_error(capsys, ["synthesize", "--input", str(raw), "--output", out, "--config",
                             str(tmp_path / "bad.yaml")], "not valid YAML")
    (tmp_path / "twice.yaml").write_text("seed: 1\nseed: 2\n")
    _one_line_error(capsys, ["synthesize", "--input", str(raw), "--output", out, "--config",
                             str(tmp_path / "twice.yaml")], "'seed' given twice")
    _one_line_error(capsys, ["synthesize", "--input", str(raw), "--output", out, "--set",
                             "layers.dilate_kernel=100000"], "allowed 1..101")


def test_outputs_that_cannot_be_written(tmp_path, raw, capsys):
    (tmp_path / "afile").write_text("x")
    _one_line_error(capsys, ["synthesize", "--input", str(raw), "--output", str(tmp_path / "afile"),
                             "--runner", "local"], "existing file")
    _one_line_error(capsys, ["synthesize", "--input", str(raw), "--output", str(tmp_path / "afile" / "sub"),
                             "--runner", "local"], "cannot write")
    _one_line_error(capsys, ["download", "--input", str(tmp_path / "x.parquet"), "--output",
                             str(tmp_path / "afile")], "existing file")


def test_stats_and_filter_on_a_raw_directory_say_what_it_is(tmp_path, raw, capsys):
    _one_line_error(capsys, ["stats", str(raw)], "raw shards", "l2i synthesize")
    _one_line_error(capsys, ["stats", str(tmp_path / "missing")], "not found")
    _one_line_error(capsys, ["filter", "--input", str(raw), "--output", str(tmp_path / "f"),
                             "--min-mask-score", "0.5"], "raw shards")
