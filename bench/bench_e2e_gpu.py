"""End to end on a GPU: `synthesize` with ICON-R + SD2 (random weights in the published shapes) against the
SD2 stage alone, for `--runner local` and `--runner ray` with the default settings.

Prints per runner: img/s, its ratio to the SD2 stage alone (Sd2Inpainter.inpaint on ready 512x512 images at
the default batch), the GPU busy fraction sampled with NVML (`nvidia-smi -lms`, utilization.gpu > 0 while
the run's samples were taken, and its mean) and the peak GPU memory seen. Nothing is downloaded: the
random-weight models are written to a temporary directory and loaded by the production loaders.

    python bench/bench_e2e_gpu.py [--images 256] [--steps 50] [--runners local,ray]

Needs CUDA and nvidia-smi; repo root on PYTHONPATH. Never asserts on time.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent), str(BENCH.parent / "tests")]

import torch  # noqa: E402
from bench_sd2_gpu import build_pipeline, inputs  # noqa: E402
from bench_synthesize import write_photo_shards  # noqa: E402

from l2i_pipeline.core.typedconfig import with_defaults  # noqa: E402
from l2i_pipeline.engine.synthesize import synthesize  # noqa: E402
from l2i_pipeline.models.icon import ICON  # noqa: E402
from stages.config import InpaintConfig, load_config  # noqa: E402
from stages.inpaint_sd2 import Sd2Inpainter  # noqa: E402


class Nvml:
    """GPU utilization and memory every 250 ms from nvidia-smi, in a thread."""

    def __init__(self):
        self.rows: list[tuple[float, float, float]] = []
        self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                      "--format=csv,noheader,nounits", "-lms", "250", "-i", "0"],
                                     stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                util, mem = (float(x) for x in line.split(","))
            except ValueError:
                continue
            self.rows.append((time.time(), util, mem))

    def window(self, t0: float, t1: float) -> dict:
        rows = [r for r in self.rows if t0 <= r[0] <= t1] or [(0, 0.0, 0.0)]
        return {"busy": sum(r[1] > 0 for r in rows) / len(rows), "util": sum(r[1] for r in rows) / len(rows) / 100,
                "peak_mib": max(r[2] for r in rows)}

    def stop(self) -> None:
        self.proc.terminate()


def make_models(tmp: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    icon = tmp / "ICON-Res.weight"
    model = ICON("ICON-R")
    torch.save({model.official_key(k): v for k, v in model.state_dict().items()}, icon)
    sd2 = tmp / "sd2"
    build_pipeline("cuda", torch.float16, tmp).save_pretrained(sd2)
    return icon, sd2


def sd2_alone(model: Path, steps: int, batch: int, n: int) -> float:
    from stages import sd2_pipeline as sd2

    inp = Sd2Inpainter(InpaintConfig(backend="sd2", steps=steps, batch_size=batch, model=str(model)), seed=0)
    inp.use_pipeline(sd2.load_pipeline(model, False, torch.float16), "cuda")
    images, masks = inputs(batch, 512)
    keys = [f"{i:09d}" for i in range(batch)]
    inp.inpaint(images, masks, keys)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(max(1, n // batch)):
        inp.inpaint(images, masks, keys)
    torch.cuda.synchronize()
    rate = batch * max(1, n // batch) / (time.perf_counter() - t0)
    del inp
    torch.cuda.empty_cache()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--runners", default="local,ray")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides for synthesize")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="l2i_e2e_gpu_"))
    icon, sd2 = make_models(tmp)
    write_photo_shards(tmp / "raw", args.images, shards=4)
    overrides = with_defaults(["saliency.backend=icon", f"saliency.weights={icon}", "inpaint.backend=sd2",
                               f"inpaint.model={sd2}", f"inpaint.steps={args.steps}", "output_shard_size=32"], args.set)
    cfg = load_config(None, overrides)
    alone = sd2_alone(sd2, args.steps, cfg.inpaint.batch_size, min(args.images, 64))
    print(f"{torch.cuda.get_device_name()}; {os.cpu_count()} CPUs; {args.images} images at 512px, {args.steps} steps; "
          f"SD2 stage alone (batch {cfg.inpaint.batch_size}): {alone:.2f} img/s")
    nvml = Nvml()
    print(f"\n{'runner':<7}{'img/s':>8}{'/SD2':>7}{'busy':>7}{'util':>7}{'peak GiB':>10}")
    try:
        for runner in args.runners.split(","):
            t0 = time.time()
            summary = synthesize(tmp / "raw", tmp / f"out_{runner}", cfg, runner=runner)
            t1 = time.time()
            if runner == "ray":
                import ray

                ray.shutdown()
            w = nvml.window(t0, t1)
            ips = summary["samples"] / (t1 - t0)
            print(f"{runner:<7}{ips:>8.2f}{ips / alone:>7.2f}{w['busy']:>7.2f}{w['util']:>7.2f}"
                  f"{w['peak_mib'] / 1024:>10.1f}", flush=True)
    finally:
        nvml.stop()


if __name__ == "__main__":
    main()
