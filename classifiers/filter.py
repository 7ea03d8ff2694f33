"""`l2i filter`: L2I(U) + scores -> LAION-L2I shards of the samples whose scores pass the thresholds.

Decisions need only each shard's parquet index and its scores (sidecar `NAME_scores.parquet`, else the
scores `stages/score.py` wrote inline into the metadata), so `--dry-run` re-picks thresholds in seconds.
Kept samples are copied member by member as bytes; every input row stays in the output parquet, dropped
ones as `rejected` with a `filter:*` reason. Output shards are atomic; a rerun skips shards already
written with the same thresholds from the same scores (sha256 recorded in each shard's stats) and rewrites
the others (other thresholds, or rescored since). A lock object keeps two runs out of one output.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from l2i_pipeline.core import shards
from l2i_pipeline.core.commit import write_output_shard
from l2i_pipeline.core.errors import ConfigError, NotFound
from l2i_pipeline.core.lock import LOCK, output_lock  # noqa: F401 - LOCK: the lock object's name
from l2i_pipeline.core.outputs import check_apart, check_l2i_dir, check_output
from l2i_pipeline.core.sample import OK, REJECTED, Sample
from l2i_pipeline.core.sidecars import read_sidecar, sidecar_exists, sidecar_location
from l2i_pipeline.core.storage import Store, as_store
from l2i_pipeline.formats.names import MEMBERS, PARQUET

log = logging.getLogger(__name__)

INDEX_FIELDS = ("url", "orig_width", "orig_height", "aesthetic", "similarity", "punsafe", "pwatermark",
                "mask_area", "components")
REPORT = "filter_report.json"


@dataclass
class FilterJob:
    input: str | Store  # a Store carries the --storage-options to every read and write
    output: str | Store
    min_mask_score: float | None
    min_inpaint_score: float | None
    scores_dir: str | Store | None = None  # where `l2i score` wrote sidecars; default: the input dir
    dry_run: bool = False
    lock: bool = True  # False (--no-lock): no OUT/_lock.json, for stores without conditional creates

    def settings(self) -> dict[str, Any]:
        return {"min_mask_score": self.min_mask_score, "min_inpaint_score": self.min_inpaint_score,
                "input": as_store(self.input).url}


def scores_digest(job: FilterJob, name: str) -> str:
    """sha256 of what the decisions read: the sidecar, else the shard's parquet (inline scores live there)."""
    path = sidecar_location(job.scores_dir or job.input, name)
    if sidecar_exists(path):
        store, obj = path
    else:
        store, obj = as_store(job.input), f"{name}{PARQUET}"
    return hashlib.sha256(store.get(obj)).hexdigest()


def shard_scores(job: FilterJob, name: str, rows: list[dict]) -> tuple[dict[str, dict[str, float]], str]:
    """(key -> scores, source) from the sidecar, else from inline metadata; source "none" when neither."""
    path = sidecar_location(job.scores_dir or job.input, name)
    if sidecar_exists(path):
        return read_sidecar(path), "sidecar"
    inline = {}
    for r in rows:
        meta = json.loads(r["meta"]) if r.get("meta") else {}
        got = {f: meta[f] for f in ("mask_score", "inpaint_score") if meta.get(f) is not None}
        if got:
            inline[r["key"]] = got
    return inline, "inline" if inline else "none"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def decide(scores: dict[str, float] | None, job: FilterJob) -> str | None:
    """None to keep, else the drop reason."""
    low, unscored = [], []
    for field, thr in (("mask_score", job.min_mask_score), ("inpaint_score", job.min_inpaint_score)):
        if thr is None:
            continue
        v = (scores or {}).get(field)
        if _missing(v):
            unscored.append(field.split("_")[0])
        elif v < thr:
            low.append(field.split("_")[0])
    if unscored:
        return f"filter:unscored_{'_'.join(unscored)}"
    if low:
        return f"filter:low_{'_and_'.join(low)}_score"
    return None


def _sample(row: dict, name: str) -> Sample:
    meta = json.loads(row["meta"]) if row.get("meta") else {}
    for f in INDEX_FIELDS:
        if meta.get(f) is None and row.get(f) is not None:
            meta[f] = row[f]
    return Sample(key=row["key"], unit=name, caption=row.get("caption") or "", meta=meta,
                  status=row["status"], reason=row.get("reason"))


def filter_shard(job: FilterJob, name: str) -> dict[str, Any]:
    """Decide every row of one shard; unless dry-run, write the output shard. Returns its counts."""
    rows = shards.read_output_index(job.input, [name]).to_pylist()
    scores, source = shard_scores(job, name, rows)
    samples, kept_keys = [], set()
    for row in rows:
        s = _sample(row, name)
        if s.ok:
            sc = scores.get(s.key)
            s.meta.update({k: v for k, v in (sc or {}).items() if not _missing(v)})
            reason = decide(sc, job)
            if reason:
                s.status, s.reason = REJECTED, reason
            else:
                kept_keys.add(s.key)
        samples.append(s)
    if not job.dry_run:
        members = {k: m for k, m in shards.iter_output_samples(job.input, name) if k in kept_keys}
        for s in samples:
            if s.key in kept_keys:
                s.members = members.get(s.key)
                if s.members is None or any(ext not in s.members for ext in MEMBERS):
                    s.status, s.reason, s.members = REJECTED, "filter:missing_members", None
        extra = {"filter": {**job.settings(), "scores": source, "scores_sha256": scores_digest(job, name)},
                 "source_shard": name}
        return write_output_shard(job.output, name, samples, extra)
    return {"name": name, "count": len(samples), "status": dict(Counter(s.status for s in samples)),
            "reasons": dict(Counter(s.reason for s in samples if not s.ok))}


def _done(job: FilterJob, name: str) -> dict[str, Any] | None:
    """The stats of an output shard already written with the same settings, else None."""
    if not shards.is_complete(job.output, name):
        return None
    stats = shards.read_marker(job.output, name)
    f = stats.get("filter", {})
    same = ({k: f.get(k) for k in job.settings()} == job.settings()
            and f.get("scores_sha256") == scores_digest(job, name))
    return stats if same else None  # other thresholds, or rescored since: redo


def run_filter(job: FilterJob) -> dict[str, Any]:
    from tqdm import tqdm

    t0 = time.time()
    if job.min_mask_score is None and job.min_inpaint_score is None:
        raise ConfigError("give --min-mask-score and/or --min-inpaint-score")
    for flag, v in (("--min-mask-score", job.min_mask_score), ("--min-inpaint-score", job.min_inpaint_score)):
        if v is not None and not 0.0 <= v <= 1.0:  # nan fails this too
            raise ConfigError(f"{flag} {v}: a score threshold is a probability in [0, 1]")
    check_apart(as_store(job.input), as_store(job.output))  # also through a symlink, or a parent of --input
    check_l2i_dir(job.input, "l2i filter")
    names = shards.list_output_shards(job.input)
    if not names:
        raise NotFound(f"no complete L2I(U) shards in {job.input}")
    unscored = [n for n in names
                if shard_scores(job, n, shards.read_output_index(job.input, [n]).to_pylist())[1] == "none"]
    if unscored:
        raise NotFound(
            f"{len(unscored)} of {len(names)} shards have no scores (no {unscored[0]}_scores.parquet in "
            f"{job.scores_dir or job.input}, no inline scores); run `l2i score --input {job.input}` first")
    if not job.dry_run:
        check_output(job.output)
    locked = job.lock and not job.dry_run
    with output_lock(as_store(job.output), "filter", settings=job.settings(), enabled=locked):
        return _filter_all(job, names, t0, tqdm)


def _filter_all(job: FilterJob, names: list[str], t0: float, tqdm) -> dict[str, Any]:
    per_shard, skipped = {}, 0
    for name in tqdm(names, desc="filtering", unit="shard"):
        stats = None if job.dry_run else _done(job, name)
        if stats is not None:
            skipped += 1
        else:
            stats = filter_shard(job, name)
            log.info("shard %s: kept %d of %d", name, stats["status"].get(OK, 0), stats["count"])
        per_shard[name] = {"count": stats["count"], "kept": stats["status"].get(OK, 0), "reasons": stats["reasons"]}
    reasons = Counter()
    for s in per_shard.values():
        reasons.update(s["reasons"])
    report = {**job.settings(), "shards": len(names), "shards_skipped": skipped, "dry_run": job.dry_run,
              "rows": sum(s["count"] for s in per_shard.values()), "kept": sum(s["kept"] for s in per_shard.values()),
              "dropped_by_reason": dict(sorted(reasons.items())), "per_shard": per_shard,
              "seconds": round(time.time() - t0, 1)}
    if not job.dry_run:
        as_store(job.output).put(REPORT, json.dumps(report, indent=2, sort_keys=True).encode())
    return report
