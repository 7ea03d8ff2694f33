"""`l2i synthesize`: raw shards -> L2I(U) shards, resumable and exactly once (docs/ARCHITECTURE.md)."""
from __future__ import annotations

import argparse

from l2i_pipeline.commands.args import add_config_args, add_lock_arg, add_runner_args, add_storage_options_arg
from l2i_pipeline.core.outputs import check_output
from l2i_pipeline.engine.synthesize import ShardsFailed, synthesize
from stages.config import config_help, load_config


def print_summary(summary: dict) -> None:
    print(f"\nshards written: {summary['shards_written']}, skipped (already complete): "
          f"{summary['shards_skipped']}, samples: {summary['samples']}, "
          f"{summary['seconds']} s ({summary['images_per_second']} img/s)")
    if summary.get("failed"):
        print(f"  NOT written ({len(summary['failed'])}; rerun the same command to redo them): "
              + ", ".join(summary["failed"][:20]) + (" ..." if len(summary["failed"]) > 20 else ""))
    for status, n in sorted(summary["status"].items()):
        print(f"  {status:<40} {n:>8}")
    for reason, n in sorted(summary["reasons"].items(), key=lambda kv: -kv[1]):
        print(f"    {reason:<38} {n:>8}")


def run_synthesize(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    check_output(args.output, storage_options=args.storage_options)
    try:
        summary = synthesize(args.input, args.output, cfg, runner=args.runner, ray_address=args.ray_address,
                             num_cpus=args.num_cpus, storage_options=args.storage_options,
                             overwrite=args.overwrite, lock=not args.no_lock)
    except ShardsFailed as e:
        print_summary(e.summary)
        return 1
    print_summary(summary)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synthesize", help="raw shards -> L2I(U) layered-image shards",
                       description="Decode, saliency, layers, inpaint and write L2I(U) shards. "
                                   "Rerun the same command after a crash: complete shards are skipped.",
                       epilog=config_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="raw shards (output of `l2i download`): a path or a URL "
                                                 "(file://, s3://, gs://, any fsspec protocol)")
    p.add_argument("--output", required=True, help="L2I(U) output: a path or a URL")
    add_storage_options_arg(p)
    p.add_argument("--overwrite", action="store_true",
                   help="redo what another input, changed input shards or other settings made in --output "
                        "(default: such a rerun is refused, naming what differs)")
    add_lock_arg(p)
    add_config_args(p, "every key and its allowed values: below, and stages/config.py",
                    "saliency.backend=icon")
    add_runner_args(p, "the Ray Data pipeline (device actors, one per GPU)")
    p.set_defaults(func=run_synthesize)
