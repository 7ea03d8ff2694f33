"""`l2i`: one console script, one sub-command per capability.

Each command module of `l2i_pipeline/commands/` (one per command or command group, named after it) exposes
`register(subparsers)`, adding its parser(s) with `set_defaults(func=...)`; `func(args) -> int` is the exit
code. The modules import their libraries lazily, so `l2i --help` stays fast.
"""
from __future__ import annotations

import argparse
import logging
import sys

from l2i_pipeline.commands import (
    annotate,
    classifiers,
    demo,
    download,
    encode,
    export,
    ls,
    models,
    plan,
    sample,
    score,
    stats,
    synthesize,
    train,
)
from l2i_pipeline.commands import eval as evaluate
from l2i_pipeline.commands import filter as filter_

COMMANDS = (download, synthesize, demo, stats, ls, models, plan, export, annotate, classifiers, score, filter_,
            train, encode, sample, evaluate)


def version_line() -> str:
    """`l2i --version`: the package and the versions a cluster must agree on (the image's HEALTHCHECK)."""
    from importlib import metadata

    from l2i_pipeline import __version__

    found = []
    for dist in ("ray", "torch"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} missing")
    return f"l2i {__version__} (python {sys.version.split()[0]}, {', '.join(found)})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l2i", description="LAION-Aesthetics -> LAION-L2I layered-image shards (Text2Layer), on Ray.",
        epilog="typical flow: download -> synthesize -> stats -> annotate -> classifiers train -> score -> filter; "
               "`l2i demo` runs the first three offline. `l2i COMMAND --help` for each.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from l2i_pipeline.core.errors import EXIT_USER_ERROR, UserError

    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"l2i {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
