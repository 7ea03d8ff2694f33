"""`l2i`: one console script, one sub-command per capability.

Each module in COMMAND_MODULES exposes `register(subparsers)`, adding its parser(s) with
`set_defaults(func=...)`; `func(args) -> int` is the exit code.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = [
    "l2i_pipeline.commands.download",
    "l2i_pipeline.commands.synthesize",
    "l2i_pipeline.commands.demo",
    "l2i_pipeline.commands.stats",
    "l2i_pipeline.commands.models",
    "annotations.cli",
    "classifiers.cli",
    "training.cli",
    "training.eval.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l2i", description="LAION-Aesthetics -> LAION-L2I layered-image shards (Text2Layer), on Ray.",
        epilog="typical flow: download -> synthesize -> stats -> annotate -> classifiers train -> score -> filter; "
               "`l2i demo` runs the first three offline. `l2i COMMAND --help` for each.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
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
