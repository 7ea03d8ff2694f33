"""Every leaf command of the `l2i` parser, by its full name ("annotate users add"), for the CLI census tests."""
from __future__ import annotations

import argparse


def leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    found = {}
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    own = [a for a in parser._actions if a.dest != "help" and not isinstance(a, argparse._SubParsersAction)]
    if prefix and parser.get_default("func") and (own or not subs):  # `l2i annotate` alone only prints help
        found[prefix] = parser
    for sub in subs:
        for name, p in sub.choices.items():
            found.update(leaf_commands(p, f"{prefix} {name}".strip()))
    return found
