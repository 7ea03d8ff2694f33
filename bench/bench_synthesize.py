"""CPU throughput: each stage alone, then `l2i synthesize` on Ray vs a plain single-process loop.

Prints figures, asserts nothing. Usage: python bench/bench_synthesize.py [--images 200] [--resolution 512]
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from rawshards import make_rows, write_raw_shard  # noqa: E402

from l2i_pipeline.core.commit import write_output_shard  # noqa: E402
from l2i_pipeline.core.inputshards import plan_units  # noqa: E402
from l2i_pipeline.core.reader import read_units  # noqa: E402
from l2i_pipeline.engine.runner import build_stages  # noqa: E402
from l2i_pipeline.engine.synthesize import synthesize  # noqa: E402
from stages.config import load_config  # noqa: E402


def photo_variants(n: int, seed: int = 0) -> list[bytes]:
    """n distinct JPEGs: random crops, flips and scales of scikit-image's photographs."""
    import skimage.data

    bases = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket(),
             skimage.data.stereo_motorcycle()[0], skimage.data.immunohistochemistry()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = bases[i % len(bases)]
        h, w = img.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1)), int(w * rng.uniform(0.6, 1))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = img[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        scale = rng.uniform(1.0, 2.0)  # web images are usually larger than the working size
        pil = Image.fromarray(np.ascontiguousarray(crop)).resize((int(cw * scale), int(ch * scale)))
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out



def write_photo_shards(raw: Path, images: int, shards: int) -> int:
    """`shards` raw shards of photo variants (the benchmarks' shared input); returns the images written."""
    per = images // shards
    data = photo_variants(per * shards)
    for s in range(shards):
        rows = make_rows(per, shard=s)
        for r, img in zip(rows, data[s * per:(s + 1) * per]):
            r["image"] = img
        write_raw_shard(raw, f"{s:05d}", rows)
    return per * shards

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--stages-only", action="store_true", help="skip the end-to-end runs")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="l2i_bench_"))
    shutil.rmtree(work, ignore_errors=True)
    n = write_photo_shards(work / "raw", args.images, args.shards)
    overrides = [f"resolution={args.resolution}", "output_shard_size=25"]
    cfg = load_config(None, overrides)
    print(f"{n} images in {args.shards} raw shards; resolution {args.resolution}; {os.cpu_count()} CPUs")

    # 1. each stage alone, in this process: wall and CPU time (CPU time is what a shared machine can't distort)
    units, _ = plan_units(work / "raw", work / "none", cfg.output_shard_size)
    samples = [s for u in units for s in read_units(work / "raw", u.input_name, [u])]
    print(f"\n{'stage':<10}{'images/s':>10}{'ms/image':>10}{'CPU ms':>10}")
    cpu: dict[str, float] = {}
    for stage in build_stages(cfg):
        stage.start()
        t, c = time.perf_counter(), time.process_time()
        samples = stage.run_all(samples)
        dt, cpu[stage.name] = time.perf_counter() - t, time.process_time() - c
        print(f"{stage.name:<10}{len(samples) / dt:>10.1f}{1000 * dt / len(samples):>10.1f}"
              f"{1000 * cpu[stage.name] / len(samples):>10.1f}")
    c = time.process_time()
    for u in units:
        write_output_shard(work / "stage_out", u.name, [s for s in samples if s.unit == u.name])
    cpu["write"] = time.process_time() - c
    ok = sum(s.ok for s in samples)
    print(f"({ok}/{len(samples)} samples ok)")
    non_model = sum(cpu[k] for k in ("decode", "layers", "encode", "write"))
    print(f"non-model CPU per kept sample (decode + layers + encode + write): {1000 * non_model / max(ok, 1):.1f} "
          f"ms-core (write {1000 * cpu['write'] / max(ok, 1):.1f}); load average {os.getloadavg()[0]:.1f}")

    if args.stages_only:
        shutil.rmtree(work, ignore_errors=True)
        return
    # 2. end to end: the single-process runner vs the Ray Data pipeline, same stage code
    results = {}
    for runner in ("local", "ray"):
        t = time.perf_counter()
        summary = synthesize(work / "raw", work / f"out_{runner}", cfg, runner=runner)
        results[runner] = time.perf_counter() - t
        print(f"\n{runner:<6} {summary['samples']} samples in {results[runner]:.1f} s = "
              f"{summary['samples'] / results[runner]:.2f} images/s (status {summary['status']})")
    print(f"\nray / single-process speed-up: {results['local'] / results['ray']:.2f}x "
          f"(includes Ray start-up; {os.cpu_count()} CPUs)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
