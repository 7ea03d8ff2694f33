"""`l2i synthesize`: raw shards -> L2I(U) shards, resumable and exactly once (ARCHITECTURE.md)."""
from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from l2i_pipeline.config import Config, ConfigError, load_config
from l2i_pipeline.runner import Collector, check_backends, run_local, run_ray
from l2i_pipeline.shards import atomic_write, plan_units

log = logging.getLogger(__name__)

PACKAGES = ["l2i-pipeline", "torch", "ray", "diffusers", "timm", "img2dataset", "webdataset", "pyarrow",
            "opencv-python-headless", "numpy", "pillow", "efficientnet-pytorch"]
# settings that change speed, not output: a rerun may change them freely
RUNTIME_KEYS = {"batch_size", "num_actors", "num_gpus", "device", "read_tasks", "compile"}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def _output_affecting(d: dict) -> dict:
    return {k: _output_affecting(v) if isinstance(v, dict) else v for k, v in d.items() if k not in RUNTIME_KEYS}


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """One writer per output directory; a second concurrent run fails instead of corrupting shards."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another `l2i synthesize` is writing to {out}") from None
        for tmp in out.glob(".*.tmp*"):  # leftovers of a killed run; safe to drop under the lock
            tmp.unlink(missing_ok=True)
        yield


def write_run_json(out: Path, cfg: Config, raw_dir: Path, runner: str) -> None:
    path = out / "run.json"
    new = {"config": cfg.to_dict(), "versions": versions(), "input": str(raw_dir), "runner": runner,
           "command": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node()}
    if path.exists():
        old = json.loads(path.read_text())
        if _output_affecting(old.get("config", {})) != _output_affecting(new["config"]):
            raise ConfigError(f"{out} was started with a different config (see {path}); "
                              "resume with the same settings or write to a new directory")
        new["previous_runs"] = old.get("previous_runs", []) + [{k: old.get(k) for k in ("started", "runner")}]
    atomic_write(path, json.dumps(new, indent=2, default=str).encode())


def init_ray(address: str | None, num_cpus: int | None) -> None:
    import ray

    if ray.is_initialized():
        return
    kwargs = {"include_dashboard": False, "log_to_driver": True, "logging_level": logging.WARNING}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=num_cpus, **kwargs)  # never a stale cluster by accident


def synthesize(raw_dir: str | Path, out_dir: str | Path, cfg: Config, runner: str = "ray",
               ray_address: str | None = None, num_cpus: int | None = None) -> dict:
    """Process every pending unit; returns a summary with counts by status and reason."""
    raw, out = Path(raw_dir), Path(out_dir)
    check_backends(cfg)
    t0 = time.time()
    with output_lock(out):
        write_run_json(out, cfg, raw, runner)
        units, done = plan_units(raw, out, cfg.samples_per_shard)
        total = sum(len(u.rows) for u in units)
        log.info("%d shards to write (%d samples), %d already complete", len(units), total, done)
        summary = {"shards_skipped": done, "shards_written": 0, "samples": 0, "status": {}, "reasons": {}}

        def on_write(stats: dict) -> None:
            summary["shards_written"] += 1
            summary["samples"] += stats["count"]
            for table in ("status", "reasons"):
                for k, v in stats[table].items():
                    summary[table][k] = summary[table].get(k, 0) + v

        collector = Collector(out, {u.name: u for u in units}, {"config_seed": cfg.seed}, on_write)
        if units:
            from tqdm import tqdm

            with tqdm(total=total, unit="img", desc="synthesize", disable=None) as bar:
                if runner == "local":
                    collector.on_write = lambda st: (on_write(st), bar.update(st["count"]))
                    run_local(cfg, raw, units, collector)
                else:
                    init_ray(ray_address, num_cpus)
                    run_ray(cfg, raw, units, collector, progress=bar.update)
        if collector.unfinished():
            raise RuntimeError(f"units never completed: {collector.unfinished()[:5]}")
    summary["seconds"] = round(time.time() - t0, 2)
    summary["images_per_second"] = round(summary["samples"] / max(summary["seconds"], 1e-9), 2)
    return summary


def print_summary(summary: dict) -> None:
    print(f"\nshards written: {summary['shards_written']}, skipped (already complete): "
          f"{summary['shards_skipped']}, samples: {summary['samples']}, "
          f"{summary['seconds']} s ({summary['images_per_second']} img/s)")
    for status, n in sorted(summary["status"].items()):
        print(f"  {status:<40} {n:>8}")
    for reason, n in sorted(summary["reasons"].items(), key=lambda kv: -kv[1]):
        print(f"    {reason:<38} {n:>8}")


def run_synthesize(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    summary = synthesize(args.input, args.output, cfg, runner=args.runner, ray_address=args.ray_address,
                         num_cpus=args.num_cpus)
    print_summary(summary)
    return 0


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (see l2i_pipeline/config.py for every key)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set saliency.backend=icon (repeatable)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synthesize", help="raw shards -> L2I(U) layered-image shards",
                       description="Decode, saliency, layers, inpaint and write L2I(U) shards. "
                                   "Rerun the same command after a crash: complete shards are skipped.")
    p.add_argument("--input", required=True, help="raw shard directory (output of `l2i download`)")
    p.add_argument("--output", required=True, help="L2I(U) output directory")
    add_config_args(p)
    p.add_argument("--runner", choices=["ray", "local"], default="ray",
                   help="ray (default): Ray Data pipeline; local: one process, for debugging")
    p.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS"),
                   help="existing Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray (default: all)")
    p.set_defaults(func=run_synthesize)
