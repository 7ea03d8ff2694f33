"""Active labeling: classifier P(good) for the pool's samples, so `--strategy uncertain` can serve the train
split nearest the decision threshold first (the queue does the ordering; see queue.py).

Scores come from `l2i score` sidecars (`NAME_scores.parquet`: key, mask_score, inpaint_score) or from
classifier checkpoints run on the pool's samples. This package sits beside `classifiers` in the layers and
may not import it, so checkpoints are run by a `CheckpointScorer` that the command layer plugs in
(l2i_pipeline/commands/annotate_scoring.py). The threshold is the checkpoint's (its JSON's `threshold`),
else the one the sidecar's provenance names, else 0.5.
"""
from __future__ import annotations

import io
import json
import logging
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from annotations import db
from annotations.pool import SampleFiles, sample_files
from l2i_pipeline.core.errors import ConfigError, InputError, NotFound
from l2i_pipeline.core.sidecars import sidecar_bytes
from l2i_pipeline.core.storage import Store, as_store

log = logging.getLogger(__name__)

SCORE_FIELDS = {"mask": "mask_score", "inpaint": "inpaint_score"}
DEFAULT_THRESHOLD = 0.5

# (checkpoint per task, the pool's samples) -> {task: {key: P(good)}}
CheckpointScorer = Callable[[dict[str, str], list[SampleFiles]], dict[str, dict[str, float]]]


@dataclass
class TaskScores:
    task: str
    scores: dict[str, float]  # key -> P(good)
    threshold: float
    source: str


def checkpoint_threshold(path: str | Path) -> float:
    """The decision threshold stored in a classifier checkpoint's JSON (`l2i classifiers train` writes it)."""
    p = Path(path)
    meta_path = p.with_suffix(".json") if p.suffix in (".json", ".safetensors") else p.with_name(p.name + ".json")
    if not meta_path.is_file():
        raise NotFound(f"classifier checkpoint not found: {meta_path} (made by `l2i classifiers train`)")
    try:
        t = json.loads(meta_path.read_text()).get("threshold", DEFAULT_THRESHOLD)
    except (ValueError, AttributeError) as e:
        raise InputError(f"{meta_path} is not a classifier checkpoint's JSON ({e})") from None
    return float(t if t is not None else DEFAULT_THRESHOLD)


def read_sidecars(conn: sqlite3.Connection, scores_dir: str | Path | Store, tasks: tuple[str, ...] = db.TASKS
                  ) -> list[TaskScores]:
    """Scores of the pool's samples from the sidecars of the shards they come from (other shards unread).
    `scores_dir` is a path, a URL, or a Store (which brings its --storage-options)."""
    store = as_store(scores_dir)
    if not store.exists() or (store.local and not Path(store.root).is_dir()):
        raise NotFound(f"scores directory not found: {store.url} (made by `l2i score`)")
    have = store.list("_scores.parquet")
    shards = [r[0] for r in conn.execute("SELECT DISTINCT shard FROM samples ORDER BY shard")]
    got: dict[str, dict[str, float]] = {t: {} for t in tasks}
    thresholds: dict[str, float] = {}
    found = 0
    for shard in shards:
        name = f"{Path(shard).name}_scores.parquet"
        if name not in have:
            continue
        found += 1
        table = pq.read_table(io.BytesIO(sidecar_bytes(store, name)))  # checked against its marker
        meta = json.loads((table.schema.metadata or {}).get(b"l2i_scores", b"{}"))
        for task in tasks:
            t = (meta.get("classifiers") or {}).get(task, {}).get("threshold")
            if t is not None:
                thresholds.setdefault(task, float(t))
            if SCORE_FIELDS[task] in table.column_names:
                for key, score in zip(table.column("key").to_pylist(), table.column(SCORE_FIELDS[task]).to_pylist()):
                    if score is not None and not math.isnan(score):
                        got[task][key] = float(score)
    if not found:
        raise NotFound(f"no score sidecars for the pool's {len(shards)} shards in {scores_dir} "
                       f"(expected NAME_scores.parquet from `l2i score`)")
    return [TaskScores(t, got[t], thresholds.get(t, DEFAULT_THRESHOLD), f"sidecars in {scores_dir}")
            for t in tasks if got[t]]


def score_with_checkpoints(conn: sqlite3.Connection, checkpoints: dict[str, str],
                           scorer: CheckpointScorer | None) -> list[TaskScores]:
    """Run the given checkpoints on the pool's train samples (the only ones ranked)."""
    if scorer is None:
        raise ConfigError("scoring with classifier checkpoints needs the `l2i` command (classifiers package)")
    thresholds = {t: checkpoint_threshold(p) for t, p in checkpoints.items()}
    keys = [r[0] for r in conn.execute("SELECT key FROM samples WHERE split = 'train' ORDER BY pos")]
    files = [f for f in (sample_files(conn, k) for k in keys) if f is not None]
    got = scorer(checkpoints, files)
    return [TaskScores(t, {k: v for k, v in got.get(t, {}).items() if not math.isnan(v)}, thresholds[t],
                       f"checkpoint {checkpoints[t]}") for t in checkpoints]


def store_scores(conn: sqlite3.Connection, ts: TaskScores) -> int:
    """Replace the task's scores (the running app sees them on its next request); returns samples scored."""
    ids = dict(conn.execute("SELECT key, id FROM samples"))
    rows = [(ids[k], ts.task, s, ts.threshold) for k, s in ts.scores.items() if k in ids]
    with db.write(conn):
        conn.execute("DELETE FROM scores WHERE task = ?", (ts.task,))
        conn.executemany("INSERT INTO scores (sample_id, task, score, threshold) VALUES (?, ?, ?, ?)", rows)
        db.audit(conn, "scores", task=ts.task, samples=len(rows), threshold=ts.threshold, source=ts.source)
    log.info("%s: %d pool samples scored (threshold %.3f, %s)", ts.task, len(rows), ts.threshold, ts.source)
    return len(rows)


def scored_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {t: conn.execute("SELECT COUNT(*) FROM scores WHERE task = ?", (t,)).fetchone()[0] for t in db.TASKS}
