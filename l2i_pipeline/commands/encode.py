"""`l2i encode`: L2I shards -> latent shards through the frozen autoencoder, once (training/latents/encode.py)."""
from __future__ import annotations

import argparse
import json

from l2i_pipeline.commands.args import (
    add_actors_arg,
    add_config_args,
    add_lock_arg,
    add_runner_args,
    add_storage_options_arg,
    unwritten_exit,
)


def cmd_encode(args: argparse.Namespace) -> int:
    from l2i_pipeline.core.storage import open_store
    from training.base.config import load_train_config, with_storage_options
    from training.latents.encode import EncodeJob, encode

    cfg = with_storage_options(load_train_config(args.preset, args.config, args.set), args.storage_options)
    options = json.loads(cfg.data.storage_options) if cfg.data.storage_options else {}
    kind = "image" if cfg.ldm.target == "image" else cfg.ae.kind
    job = EncodeJob(open_store(args.data, options), open_store(args.out, options), str(args.ae), kind=kind,
                    resolution=cfg.data.resolution, test_fraction=cfg.data.test_fraction,
                    split_seed=cfg.data.split_seed, batch_size=args.batch_size, device=args.device)
    s = encode(job, runner=args.runner, workers=args.actors or 0, ray_address=args.ray_address,
               num_cpus=args.num_cpus, lock=not args.no_lock)
    speed = f"{s['samples_per_s']:.1f}" if s["samples_per_s"] else "-"
    print(f"\nl2i encode\n  shards          {s['shards']} ({s['skipped_shards']} already done)\n"
          f"  latents         {s['train']} train, {s['test']} test ({s['bad']} bad samples skipped)\n"
          f"  encoded now     {s['encoded_now']} in {s['seconds']:.1f} s ({speed} samples/s)\n"
          f"  latent shape    {s['latent_shape']}\n  latent std      {s['latent_std']:.5f} (mean "
          f"{s['latent_mean']:.5f}); scale 1/std = {s['latent_scale']:.5f}\n  summary         "
          f"{job.out.url_of('latents.json')}")
    return unwritten_exit(s["missing"])


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode L2I shards into AE latent shards for `l2i train ldm`",
                       description=__doc__ + " Rerun the same command to resume; finished shards are skipped.")
    p.add_argument("--data", required=True, help="L2I shard dir or URL")
    p.add_argument("--ae", required=True, help="the autoencoder: RUN/ae from `l2i train ae`; an SD vae/ dir with "
                                                "--set ae.kind=sd_stack or --set ldm.target=image")
    p.add_argument("--out", required=True, help="latent dir or URL")
    add_lock_arg(p)
    add_config_args(p, "training/base/config.py; encode uses data.resolution, data.test_fraction, data.split_seed, "
                       "ae.kind", "data.resolution=256", preset=True)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    add_runner_args(p, "an actor pool encoding shards (one GPU per actor when the cluster has GPUs)")
    add_actors_arg(p, None, "default: one per GPU, else 1", deprecated=("--workers",))
    add_storage_options_arg(p)  # for --data and --out
    p.set_defaults(func=cmd_encode)
