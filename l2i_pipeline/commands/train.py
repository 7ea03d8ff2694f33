"""`l2i train ae|ldm`: the CaT2I-AE and the latent diffusion UNet on L2I shards (docs/TRAINING.md).

`register()` builds `l2i train` with one sub-parser per model; `add_common_args` gives each the same
data, run-dir, config and runner options, so `l2i train ldm` reads exactly like `l2i train ae`.
"""
from __future__ import annotations

import argparse

from l2i_pipeline.commands.args import add_config_args, add_lock_arg, add_runner_args, add_storage_options_arg


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="L2I shard directory or URL (output of `l2i filter`, or of "
                                                  "`l2i synthesize` for L2I(U))")
    p.add_argument("--out", required=True, help="run directory, a local path or a URL (s3://, gs://, ...: "
                                                 "checkpoints and the export are committed there; local copies "
                                                 "under $L2I_RUN_CACHE); rerun the same command to resume")
    add_config_args(p, "every key: training/base/config.py", "train.steps=1000", preset=True)
    add_runner_args(p, "Ray Train's TorchTrainer, DDP over --workers")
    p.add_argument("--workers", type=int, default=1,
                   help="ray: Ray Train workers, the DDP ranks (one GPU each when GPUs exist; default 1)")
    add_lock_arg(p)
    p.add_argument("--max-failures", type=int, default=3, help="Ray: worker-group restarts from the last checkpoint")
    add_storage_options_arg(p)  # for --data and a URL --out (the run dir in a bucket)


def train_job(args: argparse.Namespace, sets: list[str]):
    """The flags as the library's TrainJob; `sets` go before --set (the model's own keys: --ae, --init ...)."""
    from training.jobs.runner import TrainJob

    return TrainJob(data=args.data, out=args.out, preset=args.preset, config=args.config, sets=[*sets, *args.set],
                    runner=args.runner, workers=args.workers, ray_address=args.ray_address, num_cpus=args.num_cpus,
                    max_failures=args.max_failures, storage_options=args.storage_options,
                    lock=not args.no_lock)


def run_train_ae(args: argparse.Namespace) -> int:
    from pathlib import Path

    from training.ae.task import AETask
    from training.jobs.runner import run_training

    # --init as a config key, so run.json records it and a resume checks it
    summary = run_training(AETask, train_job(args, [f"ae.init={Path(args.init).resolve()}"] if args.init else []))
    print(f"\ntrained steps {summary['start_step']} -> {summary['step']}; skipped bad samples: "
          f"{summary['bad_samples']}; exported {summary['export']}")
    return 0


def run_train_ldm(args: argparse.Namespace) -> int:
    from training.jobs.runner import run_training
    from training.ldm.task import LDMTask, ldm_sets

    summary = run_training(LDMTask, train_job(args, ldm_sets(args.ae, args.text_encoder, args.init)))
    print(f"\ntrained steps {summary['start_step']} -> {summary['step']}; exported {summary['export']} "
          f"(load it with LayeredDiffusionPipeline.from_pretrained, or `l2i sample --model {summary['export']}`)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the paper's models on L2I shards (CaT2I-AE, latent diffusion)")
    tsub = p.add_subparsers(dest="train_command", metavar="MODEL", required=True)
    ae = tsub.add_parser("ae", help="the composition-aware two-layer autoencoder CaT2I-AE (paper IV-B)",
                         description="Train CaT2I-AE on L2I shards. Writes run.json, metrics.jsonl, val/, "
                                     "checkpoints/ and ae/ (EMA weights, diffusers save_pretrained) under --out. "
                                     "Rerun the same command to resume; raise train.steps to train longer.")
    add_common_args(ae)
    ae.add_argument("--init", help="start from the weights of a checkpoint (RUN/checkpoints/step_N, or a run dir: "
                                   "its latest) with a fresh optimiser, step 0 and a new --out")
    ae.set_defaults(func=run_train_ae)

    ldm = tsub.add_parser(
        "ldm", help="the text-to-layered-image latent diffusion UNet (paper eq. 5) on autoencoder latents",
        description="Train SD v1's UNet2DConditionModel on CaT2I-AE latents (or the baselines': ae.kind=sd_stack, "
                    "ldm.target=image). --data is an `l2i encode` output (fast) or L2I shards (encoded at every step). "
                    "Writes run.json, metrics.jsonl, val/, checkpoints/ and pipeline/ under --out; rerun to resume.")
    add_common_args(ldm)
    ldm.add_argument("--ae", required=True, help="RUN/ae from `l2i train ae` (or an SD vae/ dir for the baselines)")
    ldm.add_argument("--text-encoder", required=True,
                     help="dir with SD's text_encoder/ and tokenizer/ (CLIP ViT-L/14)")
    ldm.add_argument("--init", help="start the UNet from RUN/pipeline, a pipeline dir or a UNet dir (e.g. the 256^2 "
                                    "model to continue at 512^2; SD v1-4's unet/ for SD-AE-UNet(ft), widened)")
    ldm.set_defaults(func=run_train_ldm)
