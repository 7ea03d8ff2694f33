"""`l2i classifiers train|eval`, `l2i score`, `l2i filter` (paper section III-D)."""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from pathlib import Path

from l2i_pipeline.core.lock import NO_LOCK_HELP
from l2i_pipeline.core.storage import add_storage_options_arg

log = logging.getLogger(__name__)


def _user_errors(fn):
    """A ValueError is the user's input (labels, thresholds, checkpoints): one line, exit code 2."""
    @functools.wraps(fn)
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except ValueError as e:
            print(f"l2i {args.command}: error: {e}", file=sys.stderr)
            return 2
    return wrapped


def precision(text: str) -> float:
    """--target-precision: a precision in (0, 1]; anything else (1.5, nan, 0) is refused by argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:  # false for nan too
        raise argparse.ArgumentTypeError(f"{text}: a precision is in (0, 1]")
    return value


def _table(title: str, rows: list[tuple[str, object]]) -> None:
    width = max([len(k) for k, _ in rows] + [len(title)])
    print(f"\n{title}\n{'-' * (width + 14)}")
    for k, v in rows:
        print(f"{k:<{width}}  {v:>12.4f}" if isinstance(v, float) else f"{k:<{width}}  {v!s:>12}")


def _metric_rows(prefix: str, m: dict) -> list[tuple[str, object]]:
    return [(f"{prefix} samples (good/bad)", f"{m['n']} ({m['n_good']}/{m['n_bad']})"),
            (f"{prefix} ROC-AUC", m["roc_auc"]), (f"{prefix} accuracy @0.5", m["at_0.5"]["accuracy"]),
            (f"{prefix} precision @0.5", m["at_0.5"]["precision"]), (f"{prefix} recall @0.5", m["at_0.5"]["recall"]),
            (f"{prefix} threshold @P>={m['target_precision']}", m["at_target"]["threshold"]),
            (f"{prefix} recall there", m["at_target"]["recall"]),
            (f"{prefix} kept fraction there", m["at_target"]["kept_fraction"])]


def _store(url: str | None, args: argparse.Namespace):
    """`url` opened with the command's --storage-options (None stays None)."""
    from l2i_pipeline.core.storage import open_store

    return None if url is None else open_store(url, args.storage_options)


@_user_errors
def cmd_train(args: argparse.Namespace) -> int:
    from classifiers.train import TrainConfig, train

    cfg = TrainConfig(task=args.task, labels=args.labels, samples=_store(args.samples, args), out=args.out,
                      backbone_weights=args.backbone_weights, encoding=args.encoding, image_size=args.image_size,
                      epochs=args.epochs, lr=args.lr, l2=args.l2, target_precision=args.target_precision,
                      seed=args.seed, device=args.device, feature_batch=args.batch_size)
    meta = train(cfg)
    rows = [("task", meta["task"]), ("encoding", meta["encoding"])]
    rows += [(f"{enc} validation ROC-AUC", sel["val_roc_auc"]) for enc, sel in meta["encoding_selection"].items()]
    rows += _metric_rows("train", meta["metrics"]["train"])
    if "test" in meta["metrics"]:
        rows += _metric_rows("test", meta["metrics"]["test"])
    rows += [("threshold stored", meta["threshold"]), ("seconds", meta["seconds"]), ("checkpoint", meta["paths"][0])]
    _table(f"l2i classifiers train --task {args.task}", rows)
    return 0


@_user_errors
def cmd_eval(args: argparse.Namespace) -> int:
    from classifiers.checkpoint import load_meta, save_meta
    from classifiers.evaluate import metrics, plot_curves
    from classifiers.labels import read_export, resolve
    from classifiers.scorer import Scorer

    meta = load_meta(args.checkpoint)
    task = meta["task"]
    items = [it for it in resolve(read_export(args.labels), task) if args.split == "all" or it.split == args.split]
    if not items:
        raise ValueError(f"{args.labels} has no {task} labels in split {args.split!r}")
    paths = (args.checkpoint, None) if task == "mask" else (None, args.checkpoint)
    scorer = Scorer(*paths, args.device, args.batch_size)
    import numpy as np

    from classifiers.labels import iter_prepared

    pairs = list(iter_prepared(_store(args.samples, args), items, task, scorer.sizes[task]))
    good = np.array([it.good for _, it in pairs])
    scores = scorer.score(task, np.stack([x for x, _ in pairs]))
    m = metrics(scores, good, args.target_precision)
    out = Path(args.out_dir)
    plots = plot_curves(scores, good, out, task, m["at_target"]["threshold"])
    (out / f"{task}_metrics.json").write_text(json.dumps(m, indent=2, default=float))
    if args.write_threshold:
        save_meta(args.checkpoint, {**meta, "threshold": m["at_target"]["threshold"],
                                    "threshold_source": f"{args.split} precision >= {args.target_precision}"})
    _table(f"l2i classifiers eval ({task}, {meta['encoding']}, split {args.split})",
           _metric_rows(args.split, m) + [("plots", ", ".join(p.name for p in plots)), ("written to", str(out))])
    return 0


@_user_errors
def cmd_score(args: argparse.Namespace) -> int:
    from classifiers.score import ScoreJob, score

    s = score(ScoreJob(input=_store(args.input, args), mask_classifier=args.mask_classifier,
                       inpaint_classifier=args.inpaint_classifier, scores_dir=_store(args.scores_dir, args),
                       batch_size=args.batch_size, num_actors=args.num_actors, num_gpus=args.num_gpus,
                       device=args.device, overwrite=args.overwrite, use_ray=args.runner == "ray",
                       ray_address=args.ray_address, num_cpus=args.num_cpus))
    _table("l2i score", [("shards", s["shards"]), ("skipped (sidecar exists)", s["skipped"]),
                         ("scored", s["scored"]), ("failed (unreadable)", len(s["failed"])),
                         ("samples", s["samples"]), ("unscored (undecodable)", s["unscored"]),
                         ("seconds", s["seconds"])])
    for name in s["failed"]:
        print(f"failed: {name}")
    return 1 if s["failed"] else 0


@_user_errors
def cmd_filter(args: argparse.Namespace) -> int:
    from classifiers.filter import FilterJob, run_filter

    r = run_filter(FilterJob(input=_store(args.input, args), output=_store(args.output, args),
                             min_mask_score=args.min_mask_score, min_inpaint_score=args.min_inpaint_score,
                             scores_dir=_store(args.scores_dir, args),
                             dry_run=args.dry_run, lock=not args.no_lock))
    rows = [("shards", r["shards"]), ("skipped (done, same thresholds)", r["shards_skipped"]),
            ("rows", r["rows"]), ("kept", r["kept"]),
            ("kept fraction", r["kept"] / r["rows"] if r["rows"] else 0.0)]
    rows += [(f"dropped: {k}", v) for k, v in r["dropped_by_reason"].items()]
    _table(f"l2i filter{' (dry run)' if args.dry_run else ''} mask>={args.min_mask_score} "
           f"inpaint>={args.min_inpaint_score}", rows)
    return 0


def _common(p: argparse.ArgumentParser, batch: int = 64) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: auto)")
    p.add_argument("--batch-size", type=int, default=batch, help=f"images per forward pass (default: {batch})")


def register(subparsers) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    cls = subparsers.add_parser("classifiers", help="train / evaluate the mask and inpainting quality classifiers",
                                description="EfficientNet-b0 quality classifiers, last layer only (paper III-D).")
    sub = cls.add_subparsers(dest="classifiers_command", metavar="SUBCOMMAND", required=True)

    t = sub.add_parser("train", formatter_class=fmt, help="fit a head on a label export",
                       description="Compute frozen EfficientNet-b0 features of the labelled samples once, fit the "
                                   "one-neuron head on them, evaluate on the test split, write CKPT.safetensors "
                                   "+ CKPT.json.")
    t.add_argument("--task", required=True, choices=["mask", "inpaint"])
    t.add_argument("--labels", required=True, metavar="EXPORT", help="label export (.jsonl or .parquet)")
    t.add_argument("--samples", required=True, metavar="L2IU_DIR", help="L2I(U) shards the labels refer to")
    t.add_argument("--out", required=True, metavar="CKPT", help="checkpoint path (.safetensors/.json added)")
    t.add_argument("--backbone-weights", metavar="FILE", default="efficientnet-b0-355c32eb.pth",
                   help="efficientnet-pytorch ImageNet weights")
    t.add_argument("--encoding", default=None, choices=["bg", "pair", "stem4", "auto"],
                   help="how m reaches the backbone (mask task): pair | stem4 | auto (best on validation); "
                        "default: pair for mask, bg for inpaint")
    t.add_argument("--image-size", type=int, default=224, help="classifier input size (multiple of 32)")
    t.add_argument("--epochs", type=int, default=100)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--l2", type=float, default=1e-3, help="L2 penalty on the head weights")
    t.add_argument("--target-precision", type=precision, default=0.9,
                   help="precision the stored threshold aims at, in (0, 1]")
    t.add_argument("--seed", type=int, default=0)
    _common(t)
    add_storage_options_arg(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", formatter_class=fmt, help="metrics, threshold and ROC/PR plots on labelled data",
                       description="Accuracy, precision/recall, ROC-AUC and the threshold reaching a target "
                                   "precision; writes TASK_roc.png, TASK_pr.png, TASK_metrics.json.")
    e.add_argument("--checkpoint", required=True, metavar="CKPT")
    e.add_argument("--labels", required=True, metavar="EXPORT")
    e.add_argument("--samples", required=True, metavar="L2IU_DIR")
    e.add_argument("--split", default="test", choices=["test", "train", "all"])
    e.add_argument("--target-precision", type=precision, default=0.9, help="in (0, 1]")
    e.add_argument("--out-dir", default="classifier_eval", help="where plots and metrics go")
    e.add_argument("--write-threshold", action="store_true", help="store the picked threshold in CKPT.json")
    _common(e)
    add_storage_options_arg(e)
    e.set_defaults(func=cmd_eval)

    s = subparsers.add_parser("score", formatter_class=fmt, help="score L2I(U) shards into NAME_scores.parquet",
                              description="Score every sample of complete L2I(U) shards with the quality "
                                          "classifiers (Ray actor pool, GPU when present). Sidecars are written "
                                          "atomically; a rerun skips shards whose sidecar exists.")
    s.add_argument("--input", required=True, metavar="L2IU_DIR")
    s.add_argument("--mask-classifier", metavar="CKPT")
    s.add_argument("--inpaint-classifier", metavar="CKPT")
    s.add_argument("--scores-dir", help="where sidecars go (default: beside the shards)")
    s.add_argument("--num-actors", type=int, default=1, help="actor pool size (one per GPU is typical)")
    s.add_argument("--num-gpus", type=float, default=None,
                   help="GPUs per actor, always asked (default: one when the cluster has or can get GPUs and "
                        "--device is not cpu)")
    s.add_argument("--overwrite", action="store_true",
                   help="rescore shards whose sidecar was made by other classifiers (else: refused)")
    s.add_argument("--runner", default="ray", choices=["ray", "local"], help="local: in-process, no Ray")
    s.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS"),
                   help="existing Ray cluster (default: $RAY_ADDRESS, else a local one)")
    s.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance")
    _common(s, 256)
    add_storage_options_arg(s)
    s.set_defaults(func=cmd_score)

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
    f.add_argument("--no-lock", action="store_true", help=NO_LOCK_HELP)
    add_storage_options_arg(f)
    f.set_defaults(func=cmd_filter)
