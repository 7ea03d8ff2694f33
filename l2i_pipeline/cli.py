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
    "l2i_pipeline.download",
    "l2i_pipeline.synthesize",
    "l2i_pipeline.demo",
    "l2i_pipeline.stats",
    "l2i_pipeline.models_cli",
    "annotations.cli",
    "classifiers.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l2i", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):  # the command's module is not there yet
                continue
            raise
        module.register(sub)
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
    from l2i_pipeline.config import ConfigError

    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"l2i {args.command}: config error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"l2i {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
