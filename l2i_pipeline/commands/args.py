"""The arguments several commands share, each declared here once with one meaning (README, "Commands").

- `--config FILE`, `--set KEY=VALUE` (repeatable), `--preset NAME` (training): the command's typed config;
- `--runner ray|local`: where the work runs, `ray` by default in every command that has it (a Ray cluster,
  or a private local Ray started for the command; `local`: one process, no Ray);
- `--ray-address`: the Ray cluster to join (default `$RAY_ADDRESS`, else a private local Ray);
- `--num-cpus`: CPUs of that private local Ray (ignored when joining a cluster);
- `--actors N`: the size of a Ray actor pool, one model copy per actor (`l2i train` says `--workers`: Ray
  Train's DDP ranks, which are not a pool);
- `--storage-options JSON`: fsspec options for every storage URL of the command.

An old spelling kept for a renamed flag still works and warns once (`add_actors_arg`'s `deprecated`).
"""
from __future__ import annotations

import argparse
import os
import sys

from l2i_pipeline.core.lock import NO_LOCK_HELP

RUNNERS = ("ray", "local")
DEFAULT_RUNNER = "ray"  # why one default, and why this one: README, "Commands"


def add_config_args(p: argparse.ArgumentParser, keys: str, example: str, preset: bool = False) -> None:
    """--config and --set (and --preset for the training configs, applied before --config)."""
    if preset:
        p.add_argument("--preset", help="a named set of defaults applied before --config, e.g. tiny")
    p.add_argument("--config", help=f"YAML config file ({keys})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config key, e.g. --set {example} (repeatable; a key given twice is an error)")


def add_runner_args(p: argparse.ArgumentParser, ray: str, num_cpus: bool = True, default: str | None = DEFAULT_RUNNER
                    ) -> None:
    """--runner (what `ray` runs for this command: `ray`), --ray-address and, for a private Ray, --num-cpus.

    `default=None` leaves the runner to the command's config (`l2i eval`, whose `--set runner=...` a parser
    default would override); the command then starts from DEFAULT_RUNNER itself."""
    p.add_argument("--runner", choices=RUNNERS, default=default,
                   help=f"ray (default): {ray}; local: one process, no Ray")
    p.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS"),
                   help="Ray cluster to join (default: $RAY_ADDRESS, else a private local Ray)")
    if num_cpus:
        p.add_argument("--num-cpus", type=int, default=None,
                       help="CPUs of the private local Ray (default: all; not used when joining a cluster)")


def add_actors_arg(p: argparse.ArgumentParser, default: int | None, note: str, deprecated: tuple[str, ...] = ()
                   ) -> None:
    """--actors N: the Ray actor pool's size; `deprecated`: old spellings that still work, with a warning."""
    p.add_argument("--actors", type=int, default=default, metavar="N",
                   help=f"ray: actors in the pool, one model copy each ({note})")
    for old in deprecated:
        p.add_argument(old, type=int, dest="actors", metavar="N", action=_renamed("--actors"), help=argparse.SUPPRESS)


def _renamed(new: str) -> type[argparse.Action]:
    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"warning: {option_string} is deprecated here, use {new}", file=sys.stderr)
            setattr(namespace, self.dest, values)
    return Renamed


def add_storage_options_arg(p: argparse.ArgumentParser) -> None:
    """`--storage-options JSON` for every command that takes storage URLs."""
    p.add_argument("--storage-options", default=None, metavar="JSON",
                   help="fsspec options for s3:// / gs:// URLs as a JSON object, e.g. "
                        "'{\"anon\": true}' (credentials otherwise come from the usual AWS/GCP "
                        "environment and config files; AWS_ENDPOINT_URL for S3-compatible stores); "
                        "never recorded in run.json or logs")


def add_lock_arg(p: argparse.ArgumentParser) -> None:
    """--no-lock: run without the output lock (core/lock.py), for every command that writes an output."""
    p.add_argument("--no-lock", action="store_true", help=NO_LOCK_HELP)


def unwritten_exit(names: list[str], word: str = "not written") -> int:
    """The job frame's one exit-code rule (engine/job.py): every unit left unwritten is named, one line
    each, and the command exits 1; else 0."""
    for name in names:
        print(f"{word}: {name}")
    return 1 if names else 0
