"""`l2i eval`: section V-B metrics of a sample dir; `--dataset-only` (Table V); `l2i eval compare EVAL_DIR...`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from l2i_pipeline.commands.args import (
    DEFAULT_RUNNER,
    add_actors_arg,
    add_config_args,
    add_lock_arg,
    add_runner_args,
    add_storage_options_arg,
)
from l2i_pipeline.core.errors import ConfigError, NotFound
from l2i_pipeline.core.storage import open_parent, open_store

FLAGS = ("samples", "real", "la", "out", "inception", "clip", "icon_weights", "icon_variant", "human_masks",
         "ref_cache", "name", "max_real", "max_samples", "batch_size", "device", "test_fraction", "split_seed",
         "runner", "actors", "ray_address")


def _find(obj, key: str):
    """The first value of `key` anywhere in a nested JSON object (run.json layouts may nest the data section)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            if (found := _find(v, key)) is not None:
                return found
    return None


def split_from(path: str) -> dict:
    """data.test_fraction / data.split_seed of a training run (its run.json, or the run dir holding it)."""
    p = Path(path)
    p = p / "run.json" if p.is_dir() else p
    if not p.is_file():
        raise NotFound(f"--split-from {path}: no run.json there")
    try:
        data = json.loads(p.read_text())
    except ValueError as e:
        raise ConfigError(f"--split-from {p}: not JSON ({e})") from None
    found = {k: _find(data, k) for k in ("test_fraction", "split_seed")}
    if None in found.values():
        raise ConfigError(f"--split-from {p}: no test_fraction/split_seed in it")
    return found


def build_config(args: argparse.Namespace):
    from l2i_pipeline.core.typedconfig import apply_dict, load_typed
    from training.eval.run import EvalConfig

    cfg = load_typed(EvalConfig(runner=DEFAULT_RUNNER), args.config, args.set)  # the CLI's default runner
    given = {k: getattr(args, k) for k in FLAGS if getattr(args, k, None) is not None}
    if args.split_from:
        given = {**split_from(args.split_from), **given}
    if args.strict:
        given["strict"] = True
    apply_dict(cfg, given)
    return cfg


def run_eval(args: argparse.Namespace) -> int:
    from training.eval.run import dataset_only, evaluate

    cfg = build_config(args)
    opts, lock = args.storage_options, not args.no_lock
    report = dataset_only(cfg, opts, lock) if args.dataset_only else evaluate(cfg, storage_options=opts, lock=lock)
    print(open_store(report["out"], opts).get("metrics.md").decode())
    print(f"wrote {report['out']}/metrics.json, metrics.md" + ("" if args.dataset_only else ", metrics.png"))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from training.eval.report import compare

    target = open_parent(args.output, args.storage_options) if args.output else None
    text = compare(args.dirs, args.storage_options)
    if target:
        target[0].put(target[1], text.encode())
    print(text, end="")
    return 0


def run_prompts(args: argparse.Namespace) -> int:
    from training.eval.prompts import write_prompts
    from training.eval.run import EvalConfig

    cfg = EvalConfig()
    split = split_from(args.split_from) if args.split_from else {}
    real = open_store(args.real, args.storage_options)
    n = write_prompts(real, args.out, args.test_fraction or split.get("test_fraction", cfg.test_fraction),
                      args.split_seed if args.split_seed is not None else split.get("split_seed", cfg.split_seed),
                      args.max, storage_options=args.storage_options)
    print(f"wrote {n} LL2I-E captions to {args.out}; next: l2i sample --prompts {args.out} --n 1 ...")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="FID, CLIP score and mask IOU of sampled layered images, beside the paper's tables",
        description="Section V-B of Text2Layer: clean-FID of the composites against LL2I-E (the held-out split "
                    "of --real) and LA (--la, raw images not in L2I), the raw CLIP ViT-L/14 cosine with the "
                    "prompt, and IOU of m̂>0.5 against saliency of the composite (ICON with --icon-weights, "
                    "else the classical backend, labelled so) and human masks. A metric whose weights are not "
                    "given is skipped and named with the file it needs. Writes OUT/metrics.{json,md,png} "
                    "(OUT a path or a storage URL, held by its output lock); per-image features are cached in "
                    "OUT, so a rerun resumes.",
        epilog="`l2i eval compare EVAL_DIR...` tabulates several runs, sorted by FID.")
    p.add_argument("--samples", help="`l2i sample` output dir or URL (DIR/<id>/composite.png, mask.png, "
                   "samples.parquet)")
    p.add_argument("--real", help="L2I shards dir/URL (`l2i filter` output); its held-out split is LL2I-E")
    p.add_argument("--la", help="raw img2dataset shards dir/URL; LA = its images whose keys are not in --real")
    p.add_argument("--out", help="EVAL_DIR (path or URL) for metrics and caches")
    p.add_argument("--inception", help="inception-2015-12-05.pt (clean-fid's torchscript); without it FID is skipped")
    p.add_argument("--clip", help="CLIP ViT-L/14 dir (transformers); without it CLIP score is skipped")
    p.add_argument("--icon-weights", help="ICON .weight file; without it IOU uses the classical saliency backend")
    p.add_argument("--icon-variant", help="ICON-R (default) | ICON-S | ICON-P")
    p.add_argument("--human-masks", help="dir of human masks named <sample id>.png")
    p.add_argument("--ref-cache", help="dir/URL for reference (mu, Sigma), shared by runs "
                   "(default OUT/ref_stats)")
    p.add_argument("--name", help="run name in the tables (default: the sample dir's name)")
    p.add_argument("--max-real", type=int, help="images per reference set (default 20000, as the paper)")
    p.add_argument("--max-samples", type=int, help="evaluate at most this many samples")
    p.add_argument("--split-from", help="training run dir or run.json: take data.test_fraction/split_seed from it")
    p.add_argument("--test-fraction", type=float, help="held-out fraction used in training (default 0.01)")
    p.add_argument("--split-seed", type=int, help="held-out split seed used in training (default 0)")
    p.add_argument("--batch-size", type=int, help="images per forward pass (default 32)")
    p.add_argument("--device", help="auto (default: CUDA when present) | cpu | cuda[:N]")
    add_runner_args(p, "per-image features on a Ray Data actor pool (GPU actors when the cluster has GPUs)",
                    num_cpus=False, default=None)
    add_actors_arg(p, None, "default: 1")
    p.add_argument("--dataset-only", action="store_true",
                   help="Table V: CLIP score of captions vs images of --real (L2I) and --la (LAION-A)")
    p.add_argument("--strict", action="store_true", help="fail instead of skipping metrics whose weights are absent")
    add_config_args(p, "EvalConfig keys: training/eval/config.py", "max_real=5000")
    add_lock_arg(p)
    add_storage_options_arg(p)  # for --samples, --out, --ref-cache, --real and --la
    p.set_defaults(func=run_eval)
    esub = p.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    c = esub.add_parser("compare", help="one table of several eval dirs, sorted by FID")
    c.add_argument("dirs", nargs="+", metavar="EVAL_DIR", help="`l2i eval` --out dirs (paths or URLs)")
    c.add_argument("--output", help="also write the table to this file (path or URL)")
    add_storage_options_arg(c)  # for the EVAL_DIRs and --output
    c.set_defaults(func=run_compare)
    q = esub.add_parser("prompts", help="the held-out split's captions as a prompts file for `l2i sample`",
                        description="Section V-B samples the test prompts: this writes the LL2I-E captions "
                                    "(key, prompt) of --real, chosen by the training run's hash split.")
    q.add_argument("--real", required=True, help="L2I shards dir/URL")
    q.add_argument("--out", required=True, help="prompts parquet to write (path or URL)")
    q.add_argument("--max", type=int, default=20_000, help="at most this many prompts (default 20000)")
    q.add_argument("--split-from", help="training run dir or run.json (data.test_fraction, data.split_seed)")
    q.add_argument("--test-fraction", type=float)
    q.add_argument("--split-seed", type=int)
    add_storage_options_arg(q)  # for --real and --out
    q.set_defaults(func=run_prompts)
