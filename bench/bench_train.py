"""CaT2I-AE training throughput through the real loop (`training.base.loop.train`): samples/s, peak memory, FLOP/step.

CPU: the tiny preset (what tests and the demo run). GPU (when CUDA is present): the paper-size model at 256^2
and 512^2, bf16 autocast, a batch sweep, with and without gradient checkpointing, LPIPS on (random VGG
trunk: the same compute as the real one), the GAN on; it prints model FLOP/step (torch's FlopCounterMode,
forward + backward of both losses) and MFU against the GPU's dense bf16 peak. Data are random tensors in
memory so the figure is the model's, not the disk's; `--data DIR` streams real L2I shards instead.

    python bench/bench_train.py                 # CPU tiny (+ GPU sweep when CUDA is present)
    python bench/bench_train.py --data demo_out/l2i --steps 20
"""
from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l2i_pipeline.core.typedconfig import with_defaults  # noqa: E402
from training.ae.task import AETask  # noqa: E402
from training.base import rundir  # noqa: E402
from training.base.config import TrainConfig, load_train_config  # noqa: E402
from training.base.loop import Context, train  # noqa: E402

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}


class RandomLayers:
    """A data source of random F, B, m, I batches (the loop's protocol), endless and free."""

    def __init__(self, batch_size: int, resolution: int):
        self.batch_size, self.resolution = batch_size, resolution

    def _batch(self, n: int) -> dict:
        g = torch.Generator().manual_seed(n)
        r = self.resolution
        fg, bg = torch.rand(n, 3, r, r, generator=g) * 2 - 1, torch.rand(n, 3, r, r, generator=g) * 2 - 1
        m = torch.rand(n, 1, r, r, generator=g)
        return {"fg": fg, "bg": bg, "mask": m, "image": m * fg + (1 - m) * bg, "key": [str(i) for i in range(n)]}

    def batches(self, rank, world_size, positions, consumed=0):
        batch = self._batch(self.batch_size)
        offset = 0
        while True:
            offset += self.batch_size
            yield {**batch, "_stream": {"id": 0, "epoch": 0, "offset": offset, "bad": 0}}

    def validation_batch(self, n: int) -> dict:
        return self._batch(n)


def flops_per_step(cfg: TrainConfig, device: torch.device, data) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    task = AETask(cfg)
    task.setup(Context(device))
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v
             for k, v in next(data.batches(0, 1, {})).items() if k != "_stream"}
    with FlopCounterMode(display=False) as counter, torch.autocast(device.type, torch.bfloat16,
                                                                     enabled=cfg.train.precision == "bf16"):
        out = task.step(batch, cfg.loss.disc_start)
        for loss in out.losses.values():
            loss.backward(retain_graph=True)
    return float(counter.get_total_flops())


def measure(cfg: TrainConfig, device: torch.device, data) -> dict:
    """Samples/s of the second half of a short run (the first half warms up), and peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        train(AETask(cfg), data, cfg, Path(tmp), Context(device))
        wall = time.perf_counter() - t0
        rows = rundir.read_metrics(Path(tmp))
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"samples_per_s": rows[-1]["samples_per_s"], "wall_s": wall, "peak_gib": peak / 2**30}


def run_cpu(args) -> None:
    over = ["log.progress=false", f"train.steps={args.steps}", f"log.every={max(args.steps // 2, 1)}",
            "ckpt.every=100000", "val.every=100000", "loss.disc_start=0", "ema.enabled=true"]
    cfg = load_train_config("tiny", None, with_defaults(over, args.set))
    torch.set_num_threads(cfg.train.cpu_threads or torch.get_num_threads())
    if args.data:
        from training.jobs.runner import _data

        data = _data(cfg, args.data)
    else:
        data = RandomLayers(cfg.train.batch_size, cfg.data.resolution)
    flops = flops_per_step(cfg, torch.device("cpu"), RandomLayers(cfg.train.batch_size, cfg.data.resolution))
    r = measure(cfg, torch.device("cpu"), data)
    print(f"CPU tiny preset ({cfg.data.resolution}^2, batch {cfg.train.batch_size}, {cfg.train.cpu_threads or 'all'} "
          f"thread(s), GAN on, {'shards ' + args.data if args.data else 'random tensors'}): "
          f"{r['samples_per_s']:.1f} samples/s, {r['samples_per_s'] / cfg.train.batch_size:.2f} steps/s, "
          f"{flops / 1e9:.2f} GFLOP/step, peak RSS {r['peak_gib']:.2f} GiB, {args.steps} steps in {r['wall_s']:.1f} s")


def run_gpu(args) -> None:
    device = torch.device("cuda", 0)
    name = torch.cuda.get_device_name(0)
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    print(f"\nGPU {name}; paper-size CaT2I-AE (SD KL-f8 blocks), bf16 autocast, LPIPS + GAN on; "
          f"MFU against {peak or '?'} TFLOP/s dense bf16")
    print(f"{'res':>5} {'batch':>5} {'ckpt':>5} {'samples/s':>10} {'GFLOP/step':>11} {'MFU':>6} {'peak GiB':>9}")
    for res in (256, 512):
        for ckpt in (False, True):
            for batch in args.batches:
                over = ["log.progress=false", f"train.steps={args.gpu_steps}", f"log.every={args.gpu_steps // 2}",
                        "ckpt.every=100000", "val.every=100000", "loss.disc_start=0", "lpips.pnet_rand=true",
                        "train.precision=bf16", f"train.grad_checkpointing={str(ckpt).lower()}",
                        f"data.resolution={res}", f"train.batch_size={batch}", "train.device=cuda"]
                cfg = load_train_config(None, None, with_defaults(over, args.set))
                data = RandomLayers(batch, res)
                try:
                    flops = flops_per_step(cfg, device, data)
                    r = measure(cfg, device, data)
                except torch.cuda.OutOfMemoryError:
                    print(f"{res:>5} {batch:>5} {str(ckpt):>5} {'OOM':>10}")
                    torch.cuda.empty_cache()
                    break
                mfu = flops * r["samples_per_s"] / batch / (peak * 1e12) if peak else float("nan")
                print(f"{res:>5} {batch:>5} {str(ckpt):>5} {r['samples_per_s']:>10.1f} {flops / 1e9:>11.0f} "
                      f"{mfu:>6.1%} {r['peak_gib']:>9.1f}")
                torch.cuda.empty_cache()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20, help="CPU steps (half warm-up)")
    p.add_argument("--gpu-steps", type=int, default=20)
    p.add_argument("--batches", type=int, nargs="+", default=[4, 8, 16, 32])
    p.add_argument("--data", help="stream these L2I shards instead of random tensors (CPU run)")
    p.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the GPU, for MFU")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config overrides")
    p.add_argument("--skip-cpu", action="store_true")
    p.add_argument("--model", choices=["ae", "ldm", "all"], default="all",
                   help="ae: CaT2I-AE (this file); ldm: UNet training, sampling, encode (bench_train_ldm.py)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.model in ("ae", "all"):
        if not args.skip_cpu:
            run_cpu(args)
        if torch.cuda.is_available():
            run_gpu(args)
        else:
            print("no CUDA device: the paper-size GPU sweep (256^2/512^2, bf16, batch sweep, gradient checkpointing, "
                  "FLOP/step, MFU) was not run")
    if args.model in ("ldm", "all"):
        import bench_train_ldm

        if not args.skip_cpu:
            print("\n== latent diffusion, CPU (tiny) ==")
            bench_train_ldm.run(torch.device("cpu"), quick=True, l2i=args.data)
        if torch.cuda.is_available():
            print("\n== latent diffusion, GPU (SD v1 UNet, paper-size AE, CLIP-L-sized text encoder) ==")
            bench_train_ldm.run(torch.device("cuda"), l2i=args.data)


if __name__ == "__main__":
    main()
