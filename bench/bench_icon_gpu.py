"""ICON throughput on a GPU: images/s per variant, batch size and precision.

Random weights in the official shapes (nothing is read or downloaded), so timings are real and the maps
are noise. Two measurements:

  net: the network alone (`ICON.forward`, logits at the square input size) on a ready normalized batch
       on the GPU, channels_last; fp32 (cuDNN defaults), fp16 and bf16 under torch.autocast;
  e2e: `IconSaliency.predict` on 512x512 RGB uint8 images as the pipeline calls it (CPU preprocessing,
       transfer, network, per-image upsampling and sigmoid), batch 16 (--e2e-batch).

    python3 bench/bench_icon_gpu.py            # every variant, batch 1/16/64, fp32/fp16/bf16, plus e2e
    python3 bench/bench_icon_gpu.py --quick    # same grid, 1 warm-up and 3 timed iterations, no e2e
    python3 bench/bench_icon_gpu.py --variants ICON-R --batches 16 --precisions fp16

Needs torch, timm, opencv, numpy; repo root on PYTHONPATH. Never asserts on time.
"""
from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import numpy as np
import torch

from l2i_pipeline.models.icon import ICON, VARIANTS, IconSaliency
from l2i_pipeline.models.icon.predict import AMP_DTYPES


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _official_state_dict(model: ICON) -> dict[str, torch.Tensor]:
    return {model.official_key(k): v for k, v in model.state_dict().items()}


def bench_net(model: ICON, batch: int, precision: str, warmup: int, iters: int, device: torch.device) -> dict:
    size = model.input_size
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    dtype = AMP_DTYPES[precision]
    ctx = nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode(), ctx:
        for _ in range(warmup):
            model(x)
        _sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            out = model(x)
        _sync(device)
        elapsed = time.perf_counter() - start
    finite = bool(torch.isfinite(out).all())
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"img_s": batch * iters / elapsed, "ms_batch": 1000 * elapsed / iters, "peak_gib": peak, "finite": finite}


def bench_e2e(variant: str, weights: dict, precision: str, batch: int, warmup: int, iters: int,
              device: torch.device) -> dict:
    sal = IconSaliency(variant, weights, device=str(device), batch_size=batch, precision=precision)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(batch)]
    for _ in range(warmup):
        sal.predict(images)
    start = time.perf_counter()
    for _ in range(iters):
        maps = sal.predict(images)
    elapsed = time.perf_counter() - start
    return {"img_s": len(images) * iters / elapsed, "finite": all(np.isfinite(m).all() for m in maps)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 warm-up + 3 timed iterations, no e2e")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--precisions", default="fp32,fp16,bf16")
    ap.add_argument("--iters", type=int, default=20, help="timed iterations per configuration")
    ap.add_argument("--no-e2e", action="store_true", help="skip the IconSaliency end-to-end measurement")
    ap.add_argument("--e2e-batch", type=int, default=16, help="images per predict call in the e2e measurement")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke run")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_icon_gpu: CUDA is not available (use --device cpu for a smoke run)")
        return 2
    warmup, iters = (1, 3) if args.quick else (3, args.iters)
    e2e = not (args.quick or args.no_e2e)
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}; torch {torch.__version__}; cudnn.allow_tf32={torch.backends.cudnn.allow_tf32} "
          f"matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}; warm-up {warmup}, timed {iters}")

    rows = []
    for variant in args.variants.split(","):
        torch.manual_seed(0)
        model = ICON(variant).eval().to(device).to(memory_format=torch.channels_last)
        for precision in args.precisions.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                try:
                    r = bench_net(model, batch, precision, warmup, iters, device)
                except torch.cuda.OutOfMemoryError:
                    r = {"img_s": float("nan"), "ms_batch": float("nan"), "peak_gib": float("nan"), "finite": "OOM"}
                    torch.cuda.empty_cache()
                rows.append({"variant": variant, "mode": "net", "precision": precision, "batch": batch, **r})
                print(f"  {variant} net {precision} batch {batch}: {r['img_s']:.1f} img/s", flush=True)
            if e2e:
                r = bench_e2e(variant, _official_state_dict(model), precision, args.e2e_batch, 1, max(1, iters // 4),
                              device)
                rows.append({"variant": variant, "mode": "e2e", "precision": precision, "batch": args.e2e_batch,
                             "ms_batch": float("nan"), "peak_gib": float("nan"), **r})
                print(f"  {variant} e2e {precision} batch {args.e2e_batch}: {r['img_s']:.1f} img/s", flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print(f"\n{'variant':<8} {'mode':<4} {'prec':<5} {'batch':>5} {'img/s':>9} {'ms/batch':>9} {'peak GiB':>9} finite")
    for r in rows:
        print(f"{r['variant']:<8} {r['mode']:<4} {r['precision']:<5} {r['batch']:>5} {r['img_s']:>9.1f} "
              f"{r['ms_batch']:>9.1f} {r['peak_gib']:>9.2f} {r['finite']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
