"""The `l2i score` job: per-shard score sidecars `NAME_scores.parquet` beside the L2I shards (or in --scores-dir).

A job on the frame (engine/job.py). A unit is one shard: its ok samples are read, decoded and prepared on
the CPU side (`classifiers.scorer.read_shard`, Ray tasks on the `ray` runner), scored in batches by
`classifiers.scorer.ScoreWorker` (an actor pool, `num_gpus` only when the cluster has or can get GPUs),
and gathered here per shard: once all of a shard's samples are in, its sidecar is written atomically
(l2i_pipeline/core/sidecars.py). A rerun skips shards whose sidecar exists and was made by the same classifiers
(sha256 of their weights, recorded in the sidecar); one made by other classifiers is refused, or rescored
with `overwrite`. A sample that cannot be decoded gets NaN scores (`l2i filter` drops it as `unscored`);
a shard that cannot be read gets no sidecar, is named, and the command exits 1.
The scoring model code stays in classifiers/ (below the engine); this module plans and runs it.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifiers.scorer import Scorer, ScoreWorker, read_shard
from l2i_pipeline.core import shards
from l2i_pipeline.core.errors import ConfigError, NotFound
from l2i_pipeline.core.outputs import check_l2i_dir, check_output
from l2i_pipeline.core.sidecars import (
    SIDECAR_MARKER,
    SIDECAR_SUFFIX,
    digests,
    sidecar_location,
    sidecar_provenance,
    torn_sidecar,
    write_sidecar,
)
from l2i_pipeline.core.storage import Store, as_store
from l2i_pipeline.engine.executor import executor_for
from l2i_pipeline.engine.job import Job, Summary, Work, run_job
from l2i_pipeline.engine.record import changed_keys

log = logging.getLogger(__name__)
FIELDS = ("mask_score", "inpaint_score")


@dataclass
class ScoreJob:
    input: str | Store  # a Store carries the --storage-options to every read and write, on Ray workers too
    mask_classifier: str | None
    inpaint_classifier: str | None
    scores_dir: str | Store | None = None  # default: beside the shards
    batch_size: int = 64
    num_actors: int | None = None  # ray: actors in the pool (None: one per GPU the cluster holds or will, else 1)
    num_gpus: float | None = None  # per actor; None: one GPU when the cluster has or can get GPUs (core/gpus.py)
    device: str = "auto"
    overwrite: bool = False
    use_ray: bool = True
    ray_address: str | None = None
    num_cpus: int | None = None
    lock: bool = True  # hold the output lock of the sidecars' dir (a concurrent run into it is refused)


def stale_sidecars(out_dir: Store, names: list[str], provenance: dict[str, Any]) -> dict[str, str]:
    """Shards whose sidecar was made by other classifiers -> the first differing item, in words (a torn
    sidecar is not read: it is rescored)."""
    want, stale = digests(provenance), {}
    listing = out_dir.list()
    for name in names:
        path = sidecar_location(out_dir, name)
        if path[1] not in listing or torn_sidecar(out_dir, name, listing):
            continue
        have = digests(sidecar_provenance(path))
        diff = changed_keys(have, {t: want.get(t) for t in set(want) | set(have)})
        if diff:
            task = diff[0]
            stale[name] = (f"{path[1]} has {task} scores from classifier sha256 {str(have.get(task))[:12]}, "
                           f"the given {task} classifier is {str(want.get(task))[:12]}")
    return stale


class ScoreRun(Job):
    """`l2i score` on the job frame: no run record of its own, the provenance in each sidecar is checked."""

    command, unit_key = "score", "shard"

    def __init__(self, job: ScoreJob):
        self.job, self.t0 = job, time.time()
        self.got: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        self.samples = self.unscored = 0
        self.bar = None

    def open(self) -> Store:
        return as_store(self.job.scores_dir or self.job.input)

    def check(self) -> None:
        from l2i_pipeline.core.config import DEVICE

        job = self.job
        for flag, value, ok, allowed in (
                ("--batch-size", job.batch_size, job.batch_size >= 1, ">= 1"),
                ("--actors", job.num_actors, job.num_actors is None or job.num_actors >= 1, ">= 1"),
                ("--num-gpus", job.num_gpus, job.num_gpus is None or 0 <= job.num_gpus <= 8, "0..8"),
                ("--device", job.device, bool(DEVICE.fullmatch(job.device)), "auto, cpu, cuda, cuda:N")):
            if not ok:  # before any work
                raise ConfigError(f"{flag} {value!r}: allowed {allowed}")
        self.scorer = Scorer(job.mask_classifier, job.inpaint_classifier, job.device, job.batch_size)  # fail fast
        check_l2i_dir(job.input, "l2i score")
        check_output(job.scores_dir or job.input, "--scores-dir" if job.scores_dir else "--input")
        self.out = self.open()
        self.out.makedirs()
        self.names = shards.list_output_shards(job.input)
        if not self.names:
            raise NotFound(f"no complete L2I(U) shards in {job.input} (expected `l2i synthesize` output)")

    def open_record(self, out: Store) -> None:
        self.provenance = {"classifiers": self.scorer.describe(), "input": as_store(self.job.input).url}
        self.stale = stale_sidecars(out, self.names, self.provenance)
        if self.stale and not self.job.overwrite:
            raise ConfigError(f"{len(self.stale)} shard(s) already scored by other classifiers "
                              f"({next(iter(self.stale.values()))}); rerun with --overwrite to rescore them, "
                              "or give another --scores-dir")

    def plan(self) -> list[dict]:
        return [{"shard": n} for n in self.names]

    def committed(self, out: Store, units: list[dict]) -> set[str]:
        have = out.list()  # one listing, and each sidecar's marker
        done = set()
        for n in self.names:
            if n in self.stale or f"{n}{SIDECAR_SUFFIX}" not in have and f"{n}{SIDECAR_MARKER}" not in have:
                continue
            why = torn_sidecar(out, n, have)
            if why:
                log.warning("shard %s: its sidecar is torn (%s): rescoring it", n, why)
            else:
                done.add(n)
        return done

    def _write(self, name: str) -> str:
        write_sidecar(self.out, name, self.got.pop(name, {}), self.provenance)
        log.info("shard %s: %d samples scored", name, self.expected[name])
        return name

    def work(self, todo: list[dict]) -> Work:
        from tqdm import tqdm

        job = self.job
        self.expected = {u["shard"]: sum(1 for s in shards.read_output_index(job.input, [u["shard"]])
                                         .column("status").to_pylist() if s == "ok") for u in todo}
        empty = [self._write(n) for n in self.expected if self.expected[n] == 0]
        self.bar = tqdm(total=sum(self.expected.values()), desc="scoring", unit="sample")
        sizes = {t: self.scorer.sizes[t] for t in self.scorer.tasks}
        return Work(ScoreWorker, (job.mask_classifier, job.inpaint_classifier, job.device, job.batch_size,
                                  job.num_gpus), job.batch_size, read_shard, {"input_dir": job.input, "sizes": sizes},
                    units=[u for u in todo if self.expected[u["shard"]] > 0], committed=empty)

    def collect(self, row: dict) -> list[str]:
        name, fields = str(row["shard"]), [f for f in FIELDS if f in row]
        self.got[name][str(row["key"])] = {f: float(row[f]) for f in fields}
        self.unscored += any(np.isnan(row[f]) for f in fields)
        self.samples += 1
        self.bar.update(1)
        return [self._write(name)] if len(self.got[name]) == self.expected[name] else []

    def finish(self, out: Store, summary: Summary) -> dict:
        if self.bar is not None:
            self.bar.close()
        return {"shards": summary.planned, "skipped": summary.skipped, "scored": len(summary.finished),
                "failed": sorted(summary.missing), "samples": self.samples, "unscored": self.unscored,
                "seconds": round(time.time() - self.t0, 1)}


def score(job: ScoreJob) -> dict[str, Any]:
    """Write every missing sidecar; returns a summary (shards scored/skipped/failed, samples, seconds)."""
    executor = executor_for("ray" if job.use_ray else "local", job.ray_address, job.num_cpus, job.num_actors)
    return run_job(ScoreRun(job), executor, job.lock).extra
