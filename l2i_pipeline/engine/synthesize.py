"""The synthesize job: plan units, lock the output, record provenance, run the stages (docs/ARCHITECTURE.md).

Inputs and outputs are storage URLs. The driver holds the plan (one small record per shard) and the
per-shard results; workers write the shards.
"""
from __future__ import annotations

import json
import logging
import platform
import sys
import time
from typing import Any

from l2i_pipeline.core.errors import NotFound
from l2i_pipeline.core.inputshards import plan_units
from l2i_pipeline.core.lock import output_lock
from l2i_pipeline.core.outputs import check_apart, check_raw_dir
from l2i_pipeline.core.provenance import differing_keys, output_affecting, versions, with_new_keys
from l2i_pipeline.core.rayutil import init_ray
from l2i_pipeline.core.shards import complete_shards
from l2i_pipeline.core.storage import Store, open_store
from l2i_pipeline.engine.runner import check_backends, run_local, run_ray
from l2i_pipeline.engine.writer import PARTS
from l2i_pipeline.formats.names import MARKER, PARQUET, TAR
from stages.config import RUNTIME_KEYS, Config, ConfigError

log = logging.getLogger(__name__)


class ShardsFailed(RuntimeError):
    """Some planned shards were not written; the summary names them and a rerun redoes them."""

    def __init__(self, summary: dict):
        self.summary = summary
        super().__init__(f"{len(summary['failed'])} shard(s) not written: {', '.join(summary['failed'][:10])}; "
                         "rerun the same command to redo them")


def input_fingerprint(raw: Store) -> dict[str, list[int]]:
    """{input shard: [tar size, parquet size]} from one listing: what each output shard was made from."""
    listing = raw.list()
    return {n[: -len(TAR)]: [size, listing.get(n[: -len(TAR)] + PARQUET, -1)] for n, size in listing.items()
            if n.endswith(TAR)}


def write_run_json(out: Store, cfg: Config, raw: Store, runner: str, overwrite: bool = False) -> None:
    """Record what the output is made from (config, input URL, input shard fingerprints). A rerun that
    would mix provenances is refused with the differing item named; with `overwrite` the affected shards
    lose their markers and are redone. New input shards (a download that went on) are simply added."""
    new = {"config": cfg.to_dict(), "versions": versions(), "input": raw.url,
           "input_shards": input_fingerprint(raw), "runner": runner,
           "command": [a for a in sys.argv if "storage-options" not in a and not a.startswith("{")],
           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node()}
    if out.exists("run.json"):
        old = json.loads(out.get("run.json"))
        recorded = with_new_keys(old.get("config", {}), Config().to_dict())
        diff = differing_keys(output_affecting(recorded, RUNTIME_KEYS), output_affecting(new["config"], RUNTIME_KEYS))
        changed = [n for n, fp in old.get("input_shards", {}).items() if new["input_shards"].get(n, fp) != fp]
        stale: list[str] | None = None  # input shards whose outputs must be redone (None: all of them)
        if diff or old.get("input") != raw.url:
            what = (f"settings ({', '.join(diff)} differ)" if diff else
                    f"another input ({old.get('input')}, this run names {raw.url})")
            if not overwrite:
                raise ConfigError(f"{out.url} was made with {what}; see {out.url_of('run.json')}. Resume with the "
                                  "same settings and input, write elsewhere, or redo it all with --overwrite")
        elif changed:
            if not overwrite:
                raise ConfigError(f"input shard(s) {', '.join(changed[:5])} of {raw.url} changed since {out.url} was "
                                  "made from them; redo their output shards with --overwrite, or write elsewhere")
            stale = changed
        else:
            stale = []
        if stale is None or stale:
            for name in complete_shards(out):
                if stale is None or name.rsplit("_", 1)[0] in stale:
                    out.delete(f"{name}{MARKER}")  # unmarked: redone, its files overwritten
            log.warning("--overwrite: redoing %s", "every output shard" if stale is None else f"the shards of {stale}")
        new["previous_runs"] = old.get("previous_runs", []) + [{k: old.get(k) for k in ("started", "runner")}]
    out.put("run.json", json.dumps(new, indent=2, default=str).encode())


def synthesize(raw_url: Any, out_url: Any, cfg: Config, runner: str = "ray", ray_address: str | None = None,
               num_cpus: int | None = None, storage_options: dict | str | None = None,
               overwrite: bool = False, lock: bool = True) -> dict:
    """Process every pending unit; returns a summary with counts by status and reason.

    Raises ShardsFailed (after writing everything it could) when some planned shard was not written.
    `lock=False` (`--no-lock`) writes without OUT/_lock.json, for a store without conditional creates.
    """
    raw, out = open_store(raw_url, storage_options), open_store(out_url, storage_options)
    if not raw.exists():
        raise NotFound(f"input not found: {raw.url}")
    check_apart(raw, out)
    check_raw_dir(raw)
    check_backends(cfg)
    out.check_writable()
    t0 = time.time()
    with output_lock(out, "synthesize", enabled=lock):
        write_run_json(out, cfg, raw, runner, overwrite)
        out.remove_temp_files()  # under the lock, every leftover belongs to a dead run
        out.delete_tree(PARTS)
        try:
            summary = _run(cfg, raw, out, runner, ray_address, num_cpus)
        finally:  # a failed job (full disk, a shard the store refused) leaves no temp files or parts either
            out.remove_temp_files()
            out.delete_tree(PARTS)
    summary["seconds"] = round(time.time() - t0, 2)
    summary["images_per_second"] = round(summary["samples"] / max(summary["seconds"], 1e-9), 2)
    if summary["failed"]:
        raise ShardsFailed(summary)
    return summary


def _run(cfg: Config, raw: Store, out: Store, runner: str, ray_address: str | None, num_cpus: int | None) -> dict:
    """Plan the pending units and run them; the summary of what was written and what failed."""
    units, done = plan_units(raw, out, cfg.output_shard_size)
    total = sum(u.count for u in units)
    log.info("%d shards to write (%d samples), %d already complete", len(units), total, done)
    summary: dict[str, Any] = {"shards_skipped": done, "shards_written": 0, "samples": 0, "status": {},
                               "reasons": {}, "failed": []}
    written: set[str] = set()

    def on_shard(stats: dict) -> None:
        if "failed" in stats:
            summary["failed"].append(stats["name"])
            return
        written.add(stats["name"])
        summary["shards_written"] += 1
        summary["samples"] += stats["count"]
        for table in ("status", "reasons"):
            for k, v in stats[table].items():
                summary[table][k] = summary[table].get(k, 0) + v
        log.info("wrote %s: %d samples, %s", stats["name"], stats["count"], stats["status"])

    extra = {"config_seed": cfg.seed}
    if units:
        from tqdm import tqdm

        with tqdm(total=total, unit="img", desc="synthesize", disable=None) as bar:
            if runner == "local":
                run_local(cfg, raw, out, units, extra, lambda st: (on_shard(st), bar.update(st.get("count", 0))))
            else:
                init_ray(ray_address, num_cpus)
                run_ray(cfg, raw, out, units, extra, on_shard, progress=bar.update)
    summary["failed"] = sorted(set(summary["failed"]) | ({u.name for u in units} - written))
    return summary
