"""Issue 25 item 18: a key repeated in `--set` is refused as a key repeated in a YAML file is, in every
command that takes --set (they all load through typedconfig.load_typed); a target precision outside (0, 1]
(1.5, nan) is refused by `classifiers train|eval`."""
import pytest

from l2i_pipeline.cli import main
from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.core.typedconfig import with_defaults

TWICE = ["--set", "KEY=1", "--set", "KEY=2"]


@pytest.mark.parametrize("argv, key", [
    (["synthesize", "--input", "RAW", "--output", "OUT"], "seed"),
    (["download", "--input", "RAW/x.parquet", "--output", "OUT"], "seed"),
    (["models", "check"], "seed"),
    (["demo", "--workdir", "OUT"], "seed"),
    (["train", "ae", "--data", "RAW", "--out", "OUT"], "train.lr"),
    (["encode", "--data", "RAW", "--ae", "RAW", "--out", "OUT"], "data.resolution"),
    (["eval", "--samples", "RAW"], "batch_size"),
])
def test_a_repeated_set_key_is_refused_with_one_line(argv, key, tmp_path, capsys):
    argv = [a.replace("RAW", str(tmp_path / "raw")).replace("OUT", str(tmp_path / "out")) for a in argv]
    argv += [a.replace("KEY", key) for a in TWICE]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and f"--set {key} given twice" in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_callers_defaults_give_way_to_the_users_set():
    assert with_defaults(["a=1", "b=2"], ["b=3"]) == ["a=1", "b=3"]
    from stages.config import load_config

    with pytest.raises(ConfigError, match="given twice"):
        load_config(None, ["seed=1", " seed =2"])
    assert load_config(None, with_defaults(["seed=1"], ["seed=2"])).seed == 2


@pytest.mark.parametrize("value", ["1.5", "nan", "0", "-0.1", "x"])
@pytest.mark.parametrize("command", ["train", "eval"])
def test_a_target_precision_outside_0_1_is_refused(command, value, tmp_path, capsys):
    need = {"train": ["--task", "mask", "--labels", "L", "--samples", "S", "--out", "O"],
            "eval": ["--checkpoint", "C", "--labels", "L", "--samples", "S"]}[command]
    with pytest.raises(SystemExit) as e:
        main(["classifiers", command, *need, "--target-precision", value])
    assert e.value.code == 2
    assert "--target-precision" in capsys.readouterr().err
