"""`l2i score`: per-shard score sidecars `NAME_scores.parquet` (key, mask_score, inpaint_score).

Ray Data: shard names -> `flat_map` read+decode+prepare (CPU tasks) -> `map_batches` with the `ScoreActor`
class (actor pool, `num_gpus` only when the cluster has GPUs) -> the driver gathers rows per shard and
writes each sidecar atomically once all of its samples are in. A rerun skips shards whose sidecar exists
and was made by the same classifiers (sha256 of their weights, recorded in the sidecar); one made by other
classifiers is refused, or rescored with `--overwrite`.
A sample that cannot be decoded gets NaN scores (`l2i filter` drops it as `unscored`).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from classifiers.features import decode_members, prepare
from classifiers.scorer import SCORE_FIELDS, Scorer
from l2i_pipeline.core import shards
from l2i_pipeline.core.errors import ConfigError, NotFound
from l2i_pipeline.core.lock import output_lock
from l2i_pipeline.core.outputs import check_l2i_dir, check_output
from l2i_pipeline.core.storage import Store, as_store

log = logging.getLogger(__name__)

SIDECAR_SCHEMA = pa.schema([("key", pa.string()), ("mask_score", pa.float32()), ("inpaint_score", pa.float32())])


@dataclass
class ScoreJob:
    input: str | Store  # a Store carries the --storage-options to every read and write, on Ray workers too
    mask_classifier: str | None
    inpaint_classifier: str | None
    scores_dir: str | Store | None = None  # default: beside the shards
    batch_size: int = 64
    num_actors: int = 1
    num_gpus: float | None = None  # per actor; None: one GPU when the cluster has or can get GPUs (core/gpus.py)
    device: str = "auto"
    overwrite: bool = False
    use_ray: bool = True
    ray_address: str | None = None
    num_cpus: int | None = None
    lock: bool = True  # hold the output lock of the sidecars' dir (a concurrent run into it is refused)


def sidecar_path(scores_dir: str | Path | Store, name: str) -> Path | str:
    """Where a shard's scores go: a Path in a local dir, a URL string on a store (for messages)."""
    store = as_store(scores_dir)
    return Path(store.path(f"{name}_scores.parquet")) if store.local else store.url_of(f"{name}_scores.parquet")


def sidecar_location(scores_dir: str | Path | Store, name: str) -> tuple[Store, str]:
    """(store, object name) of a shard's sidecar; a Store `scores_dir` keeps its --storage-options."""
    return as_store(scores_dir), f"{name}_scores.parquet"


SidecarRef = str | Path | tuple[Store, str]


def _located(path: SidecarRef) -> tuple[Store, str]:
    if isinstance(path, tuple):
        return path
    parent, _, name = str(path).rpartition("/")
    return as_store(parent or "."), name


def sidecar_exists(path: SidecarRef) -> bool:
    store, name = _located(path)
    return store.exists(name)


def write_sidecar(scores_dir: str | Path | Store, name: str, scores: dict[str, dict[str, float]],
                  provenance: dict[str, Any]) -> Path | str:
    keys = sorted(scores)
    table = pa.table({"key": keys, **{f: pa.array([scores[k].get(f, np.nan) for k in keys], pa.float32())
                                      for f in ("mask_score", "inpaint_score")}}, schema=SIDECAR_SCHEMA)
    table = table.replace_schema_metadata({"l2i_scores": json.dumps(provenance, default=str)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    store, obj = sidecar_location(scores_dir, name)
    store.put(obj, buf.getvalue())
    return sidecar_path(store, name)


def sidecar_provenance(path: SidecarRef) -> dict[str, Any]:
    """What a sidecar was made from (classifier digests, input), {} when it does not say."""
    store, name = _located(path)
    with store.open(name) as f:
        meta = pq.read_schema(f).metadata or {}
    try:
        return json.loads(meta.get(b"l2i_scores", b"{}"))
    except ValueError:
        return {}


def _digests(provenance: dict[str, Any]) -> dict[str, str | None]:
    return {t: d.get("sha256") for t, d in provenance.get("classifiers", {}).items()}


def _stale(out_dir: Store, names: list[str], provenance: dict[str, Any]) -> dict[str, str]:
    """Shards whose sidecar was made by other classifiers -> the first differing item, in words."""
    want, stale = _digests(provenance), {}
    for name in names:
        path = sidecar_location(out_dir, name)
        if not sidecar_exists(path):
            continue
        have = _digests(sidecar_provenance(path))
        for task in sorted(set(want) | set(have)):
            if have.get(task) != want.get(task):
                stale[name] = (f"{_located(path)[1]} has {task} scores from classifier sha256 "
                               f"{str(have.get(task))[:12]}, the given {task} classifier is "
                               f"{str(want.get(task))[:12]}")
                break
    return stale


def read_sidecar(path: SidecarRef) -> dict[str, dict[str, float]]:
    store, name = _located(path)
    rows = pq.read_table(io.BytesIO(store.get(name))).to_pylist()
    return {r["key"]: {f: r[f] for f in ("mask_score", "inpaint_score")} for r in rows}


def _read_shard(row: dict, input_dir: str | Store, sizes: dict[str, int]) -> Iterator[dict]:
    """Every ok sample of one shard as prepared uint8 inputs per task (CPU side of the pipeline)."""
    name = row["shard"]
    try:
        items = list(shards.iter_output_samples(input_dir, name))
    except OSError as e:
        log.error("shard %s cannot be read (%s); it gets no sidecar", name, e)
        return
    for key, members in items:
        out: dict[str, Any] = {"shard": name, "key": key, "error": ""}
        for task, size in sizes.items():
            try:
                out[task] = prepare(task, size, **decode_members(members, task))
            except Exception as e:  # noqa: BLE001 - one bad sample gets NaN, not a failed job
                out[task] = np.zeros((size, size, 4 if task == "mask" else 3), np.uint8)
                out["error"] = f"{task}:{type(e).__name__}"
        yield out


class ScoreActor:
    """Ray Data actor: both classifiers loaded once, batches of prepared inputs -> scores."""

    def __init__(self, mask_classifier: str | None, inpaint_classifier: str | None, device: str, batch_size: int):
        self.scorer = Scorer(mask_classifier, inpaint_classifier, device, batch_size)
        self.scorer.setup()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        bad = np.array([bool(e) for e in batch["error"]])
        out = {"shard": batch["shard"], "key": batch["key"]}
        for task in self.scorer.tasks:
            s = self.scorer.score(task, np.asarray(batch[task]))
            s[bad] = np.nan
            out[SCORE_FIELDS[task]] = s
        return out


def _expected(input_dir: str | Store, name: str) -> int:
    return sum(1 for s in shards.read_output_index(input_dir, [name]).column("status").to_pylist() if s == "ok")


def _batches_ray(job: ScoreJob, pending: list[str], sizes: dict[str, int]) -> Iterator[dict[str, np.ndarray]]:
    import ray

    from l2i_pipeline.core.gpus import Ask
    from l2i_pipeline.core.rayutil import Watchdog, describe_waiting, feeder_cpus, init_ray, model_pool, node_cpus

    init_ray(job.ray_address, job.num_cpus)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = False
    _, pool, _ = model_pool([Ask(job.num_gpus, job.num_actors, job.device)])
    ds = ray.data.from_items([{"shard": n} for n in pending], override_num_blocks=max(1, len(pending)))
    # the read tasks fit beside the actors even on a 1-CPU node (a whole CPU each would wait forever there)
    ds = ds.flat_map(_read_shard, fn_kwargs={"input_dir": job.input, "sizes": sizes},
                     num_cpus=feeder_cpus(node_cpus(), pool["num_cpus"], job.num_actors))
    ds = ds.map_batches(ScoreActor, fn_constructor_args=(job.mask_classifier, job.inpaint_classifier, job.device,
                                                         job.batch_size),
                        batch_size=job.batch_size, batch_format="numpy", **pool)
    with Watchdog(lambda: describe_waiting(lambda: f"scoring {len(pending)} shards of {job.input}")) as watchdog:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            watchdog.tick()
            yield batch


def _batches_local(job: ScoreJob, pending: list[str], sizes: dict[str, int]) -> Iterator[dict[str, np.ndarray]]:
    from classifiers.features import batched

    actor = ScoreActor(job.mask_classifier, job.inpaint_classifier, job.device, job.batch_size)
    for name in pending:
        for rows in batched(_read_shard({"shard": name}, job.input, sizes), job.batch_size):
            batch = {k: np.array([r[k] for r in rows], dtype=object if k in ("shard", "key", "error") else None)
                     for k in rows[0]}
            yield actor(batch)


def score(job: ScoreJob) -> dict[str, Any]:
    """Write every missing sidecar; returns a summary (shards scored/skipped/failed, samples, seconds)."""
    t0 = time.time()
    from l2i_pipeline.core.config import DEVICE

    for flag, value, ok, allowed in (
            ("--batch-size", job.batch_size, job.batch_size >= 1, ">= 1"),
            ("--num-actors", job.num_actors, job.num_actors >= 1, ">= 1"),
            ("--num-gpus", job.num_gpus, job.num_gpus is None or 0 <= job.num_gpus <= 8, "0..8"),
            ("--device", job.device, bool(DEVICE.fullmatch(job.device)), "auto, cpu, cuda, cuda:N")):
        if not ok:  # before any work
            raise ConfigError(f"{flag} {value!r}: allowed {allowed}")
    scorer = Scorer(job.mask_classifier, job.inpaint_classifier, job.device, job.batch_size)  # fail fast
    check_l2i_dir(job.input, "l2i score")
    check_output(job.scores_dir or job.input, "--scores-dir" if job.scores_dir else "--input")
    out_store = as_store(job.scores_dir or job.input)
    out_store.makedirs()
    out_dir = out_store
    names = shards.list_output_shards(job.input)
    if not names:
        raise NotFound(f"no complete L2I(U) shards in {job.input} (expected `l2i synthesize` output)")
    with output_lock(out_store, "score") if job.lock else contextlib.nullcontext():
        return _score_shards(job, scorer, out_dir, names, t0)


def _score_shards(job: ScoreJob, scorer: Scorer, out_dir: Store, names: list[str], t0: float) -> dict[str, Any]:
    from tqdm import tqdm

    out_store = out_dir
    provenance = {"classifiers": scorer.describe(), "input": as_store(job.input).url}
    stale = _stale(out_dir, names, provenance)
    if stale and not job.overwrite:
        raise ConfigError(f"{len(stale)} shard(s) already scored by other classifiers ({next(iter(stale.values()))}); "
                          "rerun with --overwrite to rescore them, or give another --scores-dir")
    have = out_store.list("_scores.parquet")  # one listing, not one request per shard
    pending = [n for n in names if n in stale or f"{n}_scores.parquet" not in have]
    expected = {n: _expected(job.input, n) for n in pending}
    summary = {"shards": len(names), "skipped": len(names) - len(pending), "scored": 0, "failed": [],
               "samples": 0, "unscored": 0}
    log.info("%d shards to score, %d already have sidecars", len(pending), summary["skipped"])
    got: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    finished: set[str] = set()

    def finish(name: str) -> None:
        write_sidecar(out_dir, name, got.pop(name, {}), provenance)
        finished.add(name)
        summary["scored"] += 1
        log.info("shard %s: %d samples scored", name, expected[name])

    for name in [n for n in pending if expected[n] == 0]:
        finish(name)
    todo = [n for n in pending if expected[n] > 0]
    if todo:
        sizes = {t: scorer.sizes[t] for t in scorer.tasks}
        batches = _batches_ray(job, todo, sizes) if job.use_ray else _batches_local(job, todo, sizes)
        with tqdm(total=sum(expected[n] for n in todo), desc="scoring", unit="sample") as bar:
            for batch in batches:
                fields = [f for f in ("mask_score", "inpaint_score") if f in batch]
                for i, (name, key) in enumerate(zip(batch["shard"], batch["key"])):
                    got[name][key] = {f: float(batch[f][i]) for f in fields}
                    summary["unscored"] += any(np.isnan(batch[f][i]) for f in fields)
                    if len(got[name]) == expected[name]:
                        finish(name)
                bar.update(len(batch["key"]))
                summary["samples"] += len(batch["key"])
    summary["failed"] = sorted(set(pending) - finished)  # unreadable tars: reported, no sidecar
    summary["seconds"] = round(time.time() - t0, 1)
    return summary
