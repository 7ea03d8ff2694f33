"""The synthesize job: plan units, lock the output, record provenance, run the stages (ARCHITECTURE.md)."""
from __future__ import annotations

import fcntl
import json
import logging
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from l2i_pipeline.core.config import Config, ConfigError
from l2i_pipeline.core.provenance import output_affecting, versions
from l2i_pipeline.core.rayutil import init_ray
from l2i_pipeline.core.shards import atomic_write, plan_units
from l2i_pipeline.engine.runner import Collector, check_backends, run_local, run_ray

log = logging.getLogger(__name__)

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
        if output_affecting(old.get("config", {})) != output_affecting(new["config"]):
            raise ConfigError(f"{out} was started with a different config (see {path}); "
                              "resume with the same settings or write to a new directory")
        new["previous_runs"] = old.get("previous_runs", []) + [{k: old.get(k) for k in ("started", "runner")}]
    atomic_write(path, json.dumps(new, indent=2, default=str).encode())


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


