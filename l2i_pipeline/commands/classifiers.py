"""`l2i classifiers train|eval`: the mask and inpainting quality classifiers (paper section III-D)."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from l2i_pipeline.commands.args import add_storage_options_arg
from l2i_pipeline.core.errors import InputError

log = logging.getLogger(__name__)


def precision(text: str) -> float:
    """--target-precision: a precision in (0, 1]; anything else (1.5, nan, 0) is refused by argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:  # false for nan too
        raise argparse.ArgumentTypeError(f"{text}: a precision is in (0, 1]")
    return value


def print_table(title: str, rows: list[tuple[str, object]]) -> None:
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


def open_url(url: str | None, args: argparse.Namespace):
    """`url` opened with the command's --storage-options (None stays None)."""
    from l2i_pipeline.core.storage import open_store

    return None if url is None else open_store(url, args.storage_options)


def cmd_train(args: argparse.Namespace) -> int:
    from classifiers.train import TrainConfig, train

    cfg = TrainConfig(task=args.task, labels=args.labels, samples=open_url(args.samples, args), out=args.out,
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
    print_table(f"l2i classifiers train --task {args.task}", rows)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from classifiers.checkpoint import load_meta, save_meta
    from classifiers.evaluate import metrics, plot_curves
    from classifiers.labels import read_export, resolve
    from classifiers.scorer import Scorer

    meta = load_meta(args.checkpoint)
    task = meta["task"]
    items = [it for it in resolve(read_export(args.labels), task) if args.split == "all" or it.split == args.split]
    if not items:
        raise InputError(f"{args.labels} has no {task} labels in split {args.split!r}")
    paths = (args.checkpoint, None) if task == "mask" else (None, args.checkpoint)
    scorer = Scorer(*paths, args.device, args.batch_size)
    import numpy as np

    from classifiers.labels import iter_prepared

    pairs = list(iter_prepared(open_url(args.samples, args), items, task, scorer.sizes[task]))
    good = np.array([it.good for _, it in pairs])
    scores = scorer.score(task, np.stack([x for x, _ in pairs]))
    m = metrics(scores, good, args.target_precision)
    out = Path(args.out_dir)
    plots = plot_curves(scores, good, out, task, m["at_target"]["threshold"])
    (out / f"{task}_metrics.json").write_text(json.dumps(m, indent=2, default=float))
    if args.write_threshold:
        save_meta(args.checkpoint, {**meta, "threshold": m["at_target"]["threshold"],
                                    "threshold_source": f"{args.split} precision >= {args.target_precision}"})
    print_table(f"l2i classifiers eval ({task}, {meta['encoding']}, split {args.split})",
           _metric_rows(args.split, m) + [("plots", ", ".join(p.name for p in plots)), ("written to", str(out))])
    return 0


def device_args(p: argparse.ArgumentParser, batch: int = 64) -> None:
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
    device_args(t)
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
    device_args(e)
    add_storage_options_arg(e)
    e.set_defaults(func=cmd_eval)
