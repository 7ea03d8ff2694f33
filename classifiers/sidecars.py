"""Score sidecars `NAME_scores.parquet` (key, mask_score, inpaint_score): written by `l2i score`
(engine/score.py), read by `l2i filter` and the annotation ranking.

One sidecar per L2I shard, a single whole-object put; its parquet metadata (`l2i_scores`) records what
made it (the classifiers' sha256 digests, the input), which a rerun checks before skipping the shard.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from l2i_pipeline.core.storage import Store, as_store

SIDECAR_SCHEMA = pa.schema([("key", pa.string()), ("mask_score", pa.float32()), ("inpaint_score", pa.float32())])
SIDECAR_SUFFIX = "_scores.parquet"


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


def read_sidecar(path: SidecarRef) -> dict[str, dict[str, float]]:
    store, name = _located(path)
    rows = pq.read_table(io.BytesIO(store.get(name))).to_pylist()
    return {r["key"]: {f: r[f] for f in ("mask_score", "inpaint_score")} for r in rows}


def digests(provenance: dict[str, Any]) -> dict[str, str | None]:
    """Task -> the sha256 of the classifier that made a sidecar's scores (from its provenance)."""
    return {t: d.get("sha256") for t, d in provenance.get("classifiers", {}).items()}
