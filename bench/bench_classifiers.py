"""Quality-classifier throughput: frozen features/s on CPU, images/s at batch 256 with autocast on CUDA.

    python3 bench/bench_classifiers.py                  # CPU, features/s (random backbone unless given)
    python3 bench/bench_classifiers.py --device cuda    # GPU, batch 256, fp16 autocast

Needs torch, numpy, opencv, efficientnet-pytorch and the repo root on PYTHONPATH; no Ray. Prints figures,
asserts nothing. The timed work is the device side of `l2i score` (uint8 -> float -> classifier).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from classifiers.features import to_tensor
from classifiers.model import QualityClassifier, load_backbone_state


def bench(model: QualityClassifier, device: torch.device, batch: int, size: int, iters: int, heads: bool) -> float:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, size, size, model.in_channels), dtype=np.uint8)
    model = model.to(device).eval()
    amp = device.type == "cuda"

    def step():
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            t = to_tensor(x, device)
            return model(t) if heads else model.features(t)

    step()  # warm-up (cudnn autotune, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=None, help="default: 256 on cuda, 32 on cpu")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--iters", type=int, default=None, help="default: 20 on cuda, 2 on cpu")
    p.add_argument("--backbone-weights", help="ImageNet weights (default: random init; speed is the same)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    batch, iters = a.batch_size or (256 if cuda else 32), a.iters or (20 if cuda else 2)
    if cuda:
        torch.backends.cudnn.benchmark = True
    state = load_backbone_state(a.backbone_weights) if a.backbone_weights else None
    torch.set_flush_denormal(True)  # a random backbone's activations decay to denormals; real ones do not
    name = torch.cuda.get_device_name(device) if cuda else f"cpu x{torch.get_num_threads()} threads"
    print(f"device {name}, torch {torch.__version__}, batch {batch}, {a.image_size}px, "
          f"{'fp16 autocast' if cuda else 'fp32'}, {iters} timed batches")
    for task, enc in (("inpaint", "bg"), ("mask", "pair"), ("mask", "stem4")):
        model = QualityClassifier(task, enc, a.image_size, state)
        rate = bench(model, device, batch, a.image_size, iters, heads=cuda)
        what = "images/s (scored)" if cuda else "features/s"
        print(f"{task:8s} {enc:6s} {rate:10.1f} {what}")


if __name__ == "__main__":
    main()
