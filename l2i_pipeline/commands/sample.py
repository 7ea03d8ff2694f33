"""`l2i sample`: text -> layered images (F̂, B̂, m̂, Î, composite, RGBA, .ora, .psd) from an exported pipeline."""
from __future__ import annotations

import argparse

from l2i_pipeline.commands.args import (
    add_actors_arg,
    add_lock_arg,
    add_runner_args,
    add_storage_options_arg,
    unwritten_exit,
)


def cmd_sample(args: argparse.Namespace) -> int:
    from training.sampling.run import SampleSettings, read_prompts, sample

    out = args.out
    prompts = read_prompts(args.prompt, args.prompts)
    settings = SampleSettings(steps=args.steps, guidance=args.guidance, precision=args.precision,
                              formats=tuple(f.strip() for f in args.format.split(",") if f.strip()))
    result = sample(args.model, out, prompts, n=args.n, seed=args.seed, settings=settings,
                    batch_size=args.batch_size, runner=args.runner, workers=args.actors or 0,
                    ray_address=args.ray_address, num_cpus=args.num_cpus, device=args.device, threads=args.threads,
                    storage_options=args.storage_options, lock=not args.no_lock)
    print(f"\nl2i sample\n  prompts   {len(prompts)}\n  planned   {result['planned']}\n"
          f"  skipped   {result['skipped']} (already in {args.out})\n  sampled   {result['sampled']}\n"
          f"  index     {result['index']}")
    return unwritten_exit(result["missing"])


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample layered images from a trained pipeline (DDIM + CFG)",
                       description=__doc__ + " Rerunning the same command skips finished samples.")
    p.add_argument("--model", required=True, help="the exported pipeline dir (RUN2/pipeline)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="one prompt")
    src.add_argument("--prompts", help="a text file (one prompt per line) or a parquet with a prompt/caption column")
    p.add_argument("--out", required=True, help="output dir or URL: DIR/<id>/ per sample and DIR/samples.parquet")
    add_lock_arg(p)
    add_storage_options_arg(p)
    p.add_argument("--n", type=int, default=4, help="samples per prompt (seeds SEED..SEED+N-1)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (paper: 50)")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale (paper: 7.5; 1 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--format", default="png,rgba,ora", help="comma list of png, rgba, ora, psd")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per sampling process (0 = torch's "
                                                           "default, all cores; as train.cpu_threads)")
    p.add_argument("--device", default=None, help="local runner: cpu or cuda (default: cuda when present)")
    add_runner_args(p, "an actor pool sampling prompts (one GPU per actor when the cluster has GPUs)")
    add_actors_arg(p, None, "default: one per GPU, else 1", deprecated=("--workers",))
    p.set_defaults(func=cmd_sample)
