"""`l2i score`: classifier scores of L2I(U) shards into NAME_scores.parquet sidecars (paper section III-D)."""
from __future__ import annotations

import argparse

from l2i_pipeline.commands.args import (
    add_actors_arg,
    add_lock_arg,
    add_runner_args,
    add_storage_options_arg,
    unwritten_exit,
)
from l2i_pipeline.commands.classifiers import device_args, open_url, print_table


def cmd_score(args: argparse.Namespace) -> int:
    from l2i_pipeline.engine.score import ScoreJob, score

    s = score(ScoreJob(input=open_url(args.input, args), mask_classifier=args.mask_classifier,
                       inpaint_classifier=args.inpaint_classifier, scores_dir=open_url(args.scores_dir, args),
                       batch_size=args.batch_size, num_actors=args.actors, num_gpus=args.num_gpus,
                       device=args.device, overwrite=args.overwrite, use_ray=args.runner == "ray",
                       ray_address=args.ray_address, num_cpus=args.num_cpus, lock=not args.no_lock))
    print_table("l2i score", [("shards", s["shards"]), ("skipped (sidecar exists)", s["skipped"]),
                         ("scored", s["scored"]), ("failed (unreadable)", len(s["failed"])),
                         ("samples", s["samples"]), ("unscored (undecodable)", s["unscored"]),
                         ("seconds", s["seconds"])])
    return unwritten_exit(s["failed"], "failed")


def register(subparsers) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    s = subparsers.add_parser("score", formatter_class=fmt, help="score L2I(U) shards into NAME_scores.parquet",
                              description="Score every sample of complete L2I(U) shards with the quality "
                                          "classifiers (Ray actor pool, GPU when present). Sidecars are written "
                                          "atomically; a rerun skips shards whose sidecar exists.")
    s.add_argument("--input", required=True, metavar="L2IU_DIR")
    s.add_argument("--mask-classifier", metavar="CKPT")
    s.add_argument("--inpaint-classifier", metavar="CKPT")
    s.add_argument("--scores-dir", help="where sidecars go (default: beside the shards)")
    add_actors_arg(s, None, "default: one per GPU, else 1", deprecated=("--num-actors",))
    s.add_argument("--num-gpus", type=float, default=None,
                   help="GPUs per actor, always asked (default: one when the cluster has or can get GPUs and "
                        "--device is not cpu)")
    s.add_argument("--overwrite", action="store_true",
                   help="rescore shards whose sidecar was made by other classifiers (else: refused)")
    add_lock_arg(s)
    add_runner_args(s, "an actor pool scoring shards (GPU when present)")
    device_args(s, 256)
    add_storage_options_arg(s)
    s.set_defaults(func=cmd_score)
