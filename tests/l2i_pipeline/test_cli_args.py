"""The shared arguments (l2i_pipeline/commands/args.py): one declaration, one meaning, one default per flag."""
import argparse
from pathlib import Path

import pytest
from clicommands import leaf_commands

from l2i_pipeline.cli import build_parser, main
from l2i_pipeline.commands.args import DEFAULT_RUNNER

REPO = Path(__file__).resolve().parents[2]
RUNNER_COMMANDS = {"synthesize", "demo", "score", "train ae", "train ldm", "encode", "sample", "eval"}


def _parse(argv):
    return build_parser().parse_args(argv)


def test_every_runner_has_the_same_choices_and_default():
    commands = leaf_commands(build_parser())
    with_runner = {name for name, p in commands.items() if "--runner" in p._option_string_actions}
    assert with_runner == RUNNER_COMMANDS
    for name in with_runner:
        action = commands[name]._option_string_actions["--runner"]
        assert tuple(action.choices) == ("ray", "local"), name
        assert action.default in (DEFAULT_RUNNER, None), name  # None: `l2i eval` starts its config from it
        assert "--ray-address" in commands[name]._option_string_actions, name
    assert DEFAULT_RUNNER == "ray"


def test_eval_defaults_to_the_same_runner_and_set_still_overrides_it():
    from l2i_pipeline.commands.eval import build_config

    assert build_config(_parse(["eval", "--samples", "s", "--out", "o"])).runner == DEFAULT_RUNNER
    assert build_config(_parse(["eval", "--samples", "s", "--out", "o", "--set", "runner=local"])).runner == "local"
    assert build_config(_parse(["eval", "--samples", "s", "--out", "o", "--runner", "local"])).runner == "local"


def test_sample_and_encode_default_to_ray_now():
    assert _parse(["sample", "--model", "m", "--prompt", "p", "--out", "o"]).runner == "ray"
    assert _parse(["encode", "--data", "d", "--ae", "a", "--out", "o"]).runner == "ray"


def test_actors_is_the_pool_size_and_the_old_spellings_still_work_with_a_warning(capsys):
    base = {"sample": ["sample", "--model", "m", "--prompt", "p", "--out", "o"],
            "encode": ["encode", "--data", "d", "--ae", "a", "--out", "o"],
            "score": ["score", "--input", "d"]}
    assert _parse(base["sample"]).actors is None and _parse(base["score"]).actors is None  # one per GPU, else 1
    for name, old in (("sample", "--workers"), ("encode", "--workers"), ("score", "--num-actors")):
        assert _parse([*base[name], "--actors", "3"]).actors == 3
        capsys.readouterr()
        assert _parse([*base[name], old, "2"]).actors == 2
        assert f"{old} is deprecated here, use --actors" in capsys.readouterr().err
    train = _parse(["train", "ae", "--data", "d", "--out", "o", "--workers", "4"])
    assert train.workers == 4 and not hasattr(train, "actors")  # Ray Train's ranks, not a pool


def test_shared_flags_are_declared_in_one_module():
    """--set, --runner, --ray-address, --num-cpus, --actors and --storage-options: only commands/args.py."""
    for flag in ("--set", "--runner", "--ray-address", "--num-cpus", "--actors", "--storage-options", "--preset"):
        where = [p.relative_to(REPO) for d in ("l2i_pipeline", "stages", "classifiers", "annotations", "training")
                 for p in (REPO / d).rglob("*.py") if f'add_argument("{flag}"' in p.read_text()]
        assert where == [Path("l2i_pipeline/commands/args.py")], (flag, where)


def test_no_command_parser_outside_the_command_layer():
    for d in ("stages", "classifiers", "annotations", "training", "l2i_pipeline/core", "l2i_pipeline/engine"):
        for p in (REPO / d).rglob("*.py"):
            text = p.read_text()
            assert "add_parser(" not in text and "argparse" not in text, p  # plain typed arguments only
    assert isinstance(build_parser(), argparse.ArgumentParser)


def test_one_error_policy_user_errors_are_one_line_and_nothing_else_is_caught(monkeypatch, tmp_path, capsys):
    """`l2i score|filter|classifiers` used to turn any ValueError (a bug too) into exit 2; now only UserError."""
    from classifiers import filter as filter_lib

    argv = ["filter", "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--min-mask-score", "0.5"]
    monkeypatch.setattr(filter_lib, "run_filter", lambda job: (_ for _ in ()).throw(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):
        main(argv)
    monkeypatch.undo()
    assert main(["filter", "--input", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("l2i filter: error: ") and err.count("\n") == 1 and "--min-mask-score" in err, err


def test_a_user_error_is_found_inside_every_kind_of_ray_error():
    from l2i_pipeline.core.errors import InputError, user_error_in

    inner = InputError("bad shard")

    class RayTaskError(Exception):  # Ray keeps a task's exception as .cause
        cause = inner

    class WorkerGroupError(Exception):  # Ray Train v2: rank -> error
        worker_failures = {0: RuntimeError("x"), 1: inner}

    class TrainingFailedError(Exception):  # Ray Train v1
        error = inner

    for outer in (RayTaskError(), WorkerGroupError(), TrainingFailedError()):
        assert user_error_in(outer) is inner
    try:
        raise RuntimeError("wrapped") from inner
    except RuntimeError as e:
        assert user_error_in(e) is inner
    assert user_error_in(RuntimeError("plain")) is None and user_error_in(None) is None
