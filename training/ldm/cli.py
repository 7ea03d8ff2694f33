"""`l2i train ldm`: the text-conditioned UNet on autoencoder latents, in the same loop and runner as `train ae`."""
from __future__ import annotations

import argparse
from pathlib import Path


def ldm_overrides(args: argparse.Namespace) -> list[str]:
    """--ae, --text-encoder and --init become config keys, so run.json records them and a resume checks them."""
    sets = [f"ldm.ae={_absolute(args.ae)}", f"ldm.text_encoder={Path(args.text_encoder).resolve()}"]
    if args.init:
        sets.append(f"ldm.init={Path(args.init).resolve()}")
    return sets + list(args.set)


def _absolute(location: str) -> str:
    """A local path made absolute; a URL (an export committed to a bucket) kept as given."""
    from l2i_pipeline.core.storage import split_protocol

    return str(Path(location).resolve()) if split_protocol(location)[0] == "file" else location


def run_train_ldm(args: argparse.Namespace) -> int:
    from training.ldm.task import LDMTask
    from training.runner import run_training

    args.set = ldm_overrides(args)
    summary = run_training(LDMTask, args)
    print(f"\ntrained steps {summary['start_step']} -> {summary['step']}; exported {summary['export']} "
          f"(load it with LayeredDiffusionPipeline.from_pretrained, or `l2i sample --model {summary['export']}`)")
    return 0


def add_parser(tsub: argparse._SubParsersAction, add_common_args) -> None:
    p = tsub.add_parser(
        "ldm", help="the text-to-layered-image latent diffusion UNet (paper eq. 5) on autoencoder latents",
        description="Train SD v1's UNet2DConditionModel on CaT2I-AE latents (or the baselines': ae.kind=sd_stack, "
                    "ldm.target=image). --data is an `l2i encode` output (fast) or L2I shards (encoded at every step). "
                    "Writes run.json, metrics.jsonl, val/, checkpoints/ and pipeline/ under --out; rerun to resume.")
    add_common_args(p)
    p.add_argument("--ae", required=True, help="RUN/ae from `l2i train ae` (or an SD vae/ dir for the baselines)")
    p.add_argument("--text-encoder", required=True, help="dir with SD's text_encoder/ and tokenizer/ (CLIP ViT-L/14)")
    p.add_argument("--init", help="start the UNet from RUN/pipeline, a pipeline dir or a UNet dir (e.g. the 256^2 "
                                  "model to continue at 512^2; SD v1-4's unet/ for SD-AE-UNet(ft), widened)")
    p.set_defaults(func=run_train_ldm)
