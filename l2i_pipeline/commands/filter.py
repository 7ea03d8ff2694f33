"""`l2i filter`: LAION-L2I shards of the L2I(U) samples whose scores pass thresholds (paper section III-D)."""
from __future__ import annotations

import argparse

from l2i_pipeline.commands.args import add_lock_arg, add_storage_options_arg
from l2i_pipeline.commands.classifiers import open_url, print_table


def cmd_filter(args: argparse.Namespace) -> int:
    from classifiers.filter import FilterJob, run_filter

    r = run_filter(FilterJob(input=open_url(args.input, args), output=open_url(args.output, args),
                             min_mask_score=args.min_mask_score, min_inpaint_score=args.min_inpaint_score,
                             scores_dir=open_url(args.scores_dir, args),
                             dry_run=args.dry_run, lock=not args.no_lock))
    rows = [("shards", r["shards"]), ("skipped (done, same thresholds)", r["shards_skipped"]),
            ("rows", r["rows"]), ("kept", r["kept"]),
            ("kept fraction", r["kept"] / r["rows"] if r["rows"] else 0.0)]
    rows += [(f"dropped: {k}", v) for k, v in r["dropped_by_reason"].items()]
    print_table(f"l2i filter{' (dry run)' if args.dry_run else ''} mask>={args.min_mask_score} "
           f"inpaint>={args.min_inpaint_score}", rows)
    return 0


def register(subparsers) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    f = subparsers.add_parser("filter", formatter_class=fmt, help="keep samples whose scores pass thresholds",
                              description="Write LAION-L2I shards of the L2I(U) samples whose scores pass the "
                                          "thresholds (members copied as bytes) and filter_report.json; cheap to "
                                          "rerun with other thresholds (--dry-run: the table only).")
    f.add_argument("--input", required=True, metavar="L2IU_DIR")
    f.add_argument("--output", required=True, metavar="L2I_DIR")
    f.add_argument("--min-mask-score", type=float, help="keep P(good mask) >= X (omit: no mask filtering)")
    f.add_argument("--min-inpaint-score", type=float, help="keep P(good inpainting) >= Y (omit: none)")
    f.add_argument("--scores-dir", help="where `l2i score` wrote sidecars (default: the input dir)")
    f.add_argument("--dry-run", action="store_true", help="print the kept/dropped table, write nothing")
    add_lock_arg(f)
    add_storage_options_arg(f)
    f.set_defaults(func=cmd_filter)
