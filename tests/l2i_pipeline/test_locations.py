"""Issue 25 item 16: an output inside the input is refused through a symlink and as a parent of the input,
and `synthesize` refuses an L2I(U) directory (its own output) as --input, each with one line."""
import pytest

from l2i_pipeline.cli import main
from l2i_pipeline.core.errors import InputError
from l2i_pipeline.core.outputs import check_apart
from l2i_pipeline.core.storage import open_store
from l2i_pipeline.engine.synthesize import synthesize
from stages.config import ConfigError, load_config

CFG = ["resolution=96", "output_shard_size=4", "layers.dilate_kernel=5"]


def test_an_output_inside_the_input_through_a_symlink_is_refused(raw_dir, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(raw_dir)
    cfg = load_config(None, CFG)
    for out in (link, link / "l2i"):
        with pytest.raises(ConfigError, match=r"is \(inside\) --input .*symlinks resolved"):
            synthesize(raw_dir, out, cfg, runner="local")
    with pytest.raises(ConfigError, match=r"is \(inside\) --input"):
        synthesize(link, raw_dir / "l2i", cfg, runner="local")
    assert sorted(p.name for p in raw_dir.iterdir()) == ["00000.parquet", "00000.tar", "00001.parquet", "00001.tar"]


def test_an_output_that_holds_the_input_is_refused(raw_dir, tmp_path):
    with pytest.raises(ConfigError, match=f"--output {tmp_path} holds --input {raw_dir}"):
        synthesize(raw_dir, tmp_path, load_config(None, CFG), runner="local")
    assert not (tmp_path / "run.json").exists()


def test_filter_refuses_the_same_both_ways(tmp_path):
    inp, link = tmp_path / "l2iu", tmp_path / "alias"
    inp.mkdir()
    link.symlink_to(inp)
    for out in (link, link / "kept", tmp_path):
        with pytest.raises(ConfigError, match="write elsewhere"):
            check_apart(open_store(inp), open_store(out))
    check_apart(open_store(inp), open_store(tmp_path / "kept"))  # a sibling is fine
    check_apart(open_store(inp), open_store(f"{inp}2"))  # a name that only starts the same, too


def test_synthesize_refuses_an_l2i_directory_as_input(raw_dir, tmp_path, capsys):
    l2i = tmp_path / "l2i"
    synthesize(raw_dir, l2i, load_config(None, CFG), runner="local")
    with pytest.raises(InputError, match="holds L2I\\(U\\) shards .*has run.json.*give the download directory"):
        synthesize(l2i, tmp_path / "again", load_config(None, CFG), runner="local")
    (l2i / "run.json").unlink()  # the index alone says it too
    argv = ["synthesize", "--input", str(l2i), "--output", str(tmp_path / "again"), "--runner", "local"] + \
        [a for c in CFG for a in ("--set", c)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "status/reason columns" in err[0]
    assert not (tmp_path / "again").exists()
