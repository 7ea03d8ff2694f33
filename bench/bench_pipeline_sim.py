"""Scheduling without a GPU: `synthesize` with the simulated accelerator (bench/sim_backends.py).

Saliency and inpainting take a fixed time per image on one simulated GPU (a machine-wide lock); the CPU
stages are the real ones. A Ray cluster is started with `num_gpus=1` on this CPU machine, and each runner
runs with the default settings (Ray: on the started cluster, see warm()). Printed per runner: for the
whole run, end-to-end img/s, its ratio to the simulated stages alone, the simulated GPU's busy fraction,
and the seconds before the first and after the last GPU batch (start-up, finalizing); in steady state (from
the first batch of the last model stage to start to the last batch), img/s and the busy fraction, beside
the bound the CPUs allow:

    bound = min(1, GPU s/sample x effective cores / CPU s/sample)

CPU s/sample is the CPU time (not wall time) of every stage in one process (the calibration), and the
effective cores are the CPU seconds per second that `cpu_count` busy processes actually get right now, so
on a shared machine the bound says how busy the GPU could be at best. Prints figures, asserts nothing.

    python bench/bench_pipeline_sim.py [--images 160] [--inpaint-s 0.2] [--runners local,ray]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep Ray on 127.0.0.1
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent), str(BENCH.parent / "tests")]
os.environ["PYTHONPATH"] = os.pathsep.join([*sys.path[:3], os.environ.get("PYTHONPATH", "")])  # Ray workers too
import sim_backends  # noqa: E402
from bench_synthesize import write_photo_shards  # noqa: E402

from l2i_pipeline.core.commit import write_output_shard  # noqa: E402
from l2i_pipeline.core.inputshards import plan_units  # noqa: E402
from l2i_pipeline.core.reader import read_units  # noqa: E402
from l2i_pipeline.engine.runner import build_stages  # noqa: E402
from l2i_pipeline.engine.synthesize import synthesize  # noqa: E402
from stages.config import load_config  # noqa: E402

SIM = ["saliency.backend=sim_backends:SimSaliency", "inpaint.backend=sim_backends:SimInpainter"]


def _spin(seconds: float) -> float:
    t0, c0, x = time.time(), time.process_time(), 0
    while time.time() - t0 < seconds:
        x += 1
    return time.process_time() - c0


def effective_cores(seconds: float = 2.0) -> float:
    """CPU seconds per wall second that one busy process per core gets now (= cpu_count on an idle machine)."""
    n = os.cpu_count() or 1
    with mp.get_context("fork").Pool(n) as pool:
        got = pool.map(_spin, [seconds] * n)
    return sum(got) / seconds


def calibrate(raw: Path, work: Path, cfg) -> dict:
    """One process, one stage after another: CPU s/sample by stage, and the simulated stages' wall time."""
    units, _ = plan_units(raw, work / "none", cfg.output_shard_size)
    t = time.process_time()
    samples = [s for u in units for s in read_units(raw, u.input_name, [u])]
    n = len(samples)
    cpu = {"read": (time.process_time() - t) / n}
    gpu_wall = 0.0
    for stage in build_stages(cfg):
        stage.start()
        t, w = time.process_time(), time.perf_counter()
        samples = stage.run_all(samples)
        cpu[stage.name] = (time.process_time() - t) / n
        if getattr(getattr(stage, "backend", None), "uses_gpu", False):
            gpu_wall += time.perf_counter() - w
    t = time.process_time()
    for u in units:
        write_output_shard(work / "calib_out", u.name, [s for s in samples if s.unit == u.name])
    cpu["write"] = (time.process_time() - t) / n
    busy = sum(b - a for _, a, b, _ in sim_backends.busy_intervals(sim_backends.settings()["dir"]))
    return {"cpu": cpu, "gpu_s": busy / n, "stage_alone_ips": n / gpu_wall, "kept": sum(s.ok for s in samples),
            "n": n}


def warm(ray) -> None:
    """Wait until the new cluster's worker processes and Ray Data's own actors (stats, autoscaling) are up,
    as a job submitted to a running cluster finds them: their boot (~3 s each on this machine) is the
    cluster's start, not the job's. The job's own start-up (its actors, its first batch) stays timed."""
    nap = ray.remote(num_cpus=1)(_nap)
    ray.get([nap.remote(0.5) for _ in range(os.cpu_count() or 1)])
    ray.data.range(4, override_num_blocks=2).map_batches(lambda b: b).take_all()
    time.sleep(1.0)


def _nap(seconds: float) -> None:
    time.sleep(seconds)


def run(runner: str, raw: Path, out: Path, cfg) -> dict:
    log_dir = Path(sim_backends.settings()["dir"])
    (log_dir / "busy.log").unlink(missing_ok=True)
    t0 = time.time()
    summary = synthesize(raw, out, cfg, runner=runner)
    t1 = time.time()
    spans = sim_backends.busy_intervals(log_dir)
    # steady state: from the first batch of the last model stage to start (all actors are up, the pipeline
    # is full) to the last batch; the whole run's fraction (start-up included) is printed beside it
    first = max(min(a for k, a, _, _ in spans if k == kind) for kind in {k for k, *_ in spans})
    last = max(b for _, _, b, _ in spans)
    if os.environ.get("L2I_SIM_TIMELINE"):
        for kind, a, b, n in sorted(spans, key=lambda x: x[1]):
            print(f"  {kind:<9}{a - t0:8.2f}{b - t0:8.2f}{n:4d}")
    last_kind = max({k for k, *_ in spans}, key=lambda kind: min(a for k, a, _, _ in spans if k == kind))
    steady_n = sum(n for k, a, _, n in spans if k == last_kind and a >= first)
    return {"samples": summary["samples"], "seconds": t1 - t0, "ips": summary["samples"] / (t1 - t0),
            "busy": sim_backends.busy_fraction(spans, t0, t1),
            "busy_steady": sim_backends.busy_fraction(spans, first, last), "ips_steady": steady_n / (last - first),
            "start": min(a for _, a, _, _ in spans) - t0, "tail": t1 - last}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=160)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--shard-size", type=int, default=20, help="output_shard_size")
    ap.add_argument("--resolution", type=int, default=512)
    # defaults: one H100 (issue 16): SD2 alone 4.6-4.7 img/s at 512 px, 50 steps; ICON-R ~100 img/s
    ap.add_argument("--saliency-s", type=float, default=0.01, help="simulated GPU seconds per image")
    ap.add_argument("--inpaint-s", type=float, default=0.2, help="simulated GPU seconds per image")
    ap.add_argument("--batch-s", type=float, default=0.0, help="simulated GPU seconds per batch")
    ap.add_argument("--runners", default="local,ray")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="l2i_sim_"))
    shutil.rmtree(work, ignore_errors=True)
    os.environ[sim_backends.ENV] = json.dumps({"saliency_s": args.saliency_s, "inpaint_s": args.inpaint_s,
                                               "batch_s": args.batch_s, "dir": str(work / "gpu")})
    write_photo_shards(work / "raw", args.images, args.shards)
    cfg = load_config(None, [f"resolution={args.resolution}", f"output_shard_size={args.shard_size}", *SIM])

    load = os.getloadavg()
    cores = effective_cores()
    cal = calibrate(work / "raw", work, cfg)
    cpu_s = sum(cal["cpu"].values())
    bound = min(1.0, cal["gpu_s"] * cores / cpu_s)
    print(f"{cal['n']} images ({cal['kept']} kept) at {args.resolution}px; simulated GPU: saliency "
          f"{args.saliency_s * 1e3:.0f} ms/img, inpaint {args.inpaint_s * 1e3:.0f} ms/img; {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print("CPU ms per sample by stage (one process): "
          + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in cal["cpu"].items()) + f"; total {cpu_s * 1e3:.1f}")
    print(f"calibration: effective cores {cores:.2f}; GPU s/sample {cal['gpu_s']:.4f}; simulated stages alone "
          f"{cal['stage_alone_ips']:.2f} img/s; bound = min(1, {cal['gpu_s']:.4f} x {cores:.2f} / {cpu_s:.4f}) "
          f"= {bound:.2f}")

    import ray

    print(f"\n{'':<7}{'---- whole run ----':>26}{'------- steady state -------':>36}")
    print(f"{'runner':<7}{'img/s':>8}{'/alone':>8}{'busy':>7}{'start s':>9}{'tail s':>8}{'img/s':>8}{'busy':>7}"
          f"{'bound':>7}{'busy/bound':>11}")
    for runner in args.runners.split(","):
        if runner == "ray":
            ray.init(address="local", num_cpus=os.cpu_count(), num_gpus=1, include_dashboard=False,
                     logging_level="WARNING", log_to_driver=False)
            warm(ray)
        try:
            r = run(runner, work / "raw", work / f"out_{runner}", cfg)
        finally:
            ray.shutdown()
        print(f"{runner:<7}{r['ips']:>8.2f}{r['ips'] / cal['stage_alone_ips']:>8.2f}{r['busy']:>7.2f}{r['start']:>9.1f}"
              f"{r['tail']:>8.1f}{r['ips_steady']:>8.2f}{r['busy_steady']:>7.2f}{bound:>7.2f}"
              f"{r['busy_steady'] / bound:>11.2f}", flush=True)
    print(f"(load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
