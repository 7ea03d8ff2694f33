"""Score sidecars `NAME_scores.parquet` (key, mask_score, inpaint_score): written by `l2i score`
(engine/score.py), read by `l2i filter` and the annotation ranking.

One sidecar per L2I shard, a single whole-object put; its parquet metadata (`l2i_scores`) records what
made it (the classifiers' sha256 digests, the input), which a rerun checks before skipping the shard.
It is committed as a shard is (core/commit.py): the parquet, then its marker `NAME_scores.json` last with
the parquet's size and sha256 (its own suffix, so an L2I shard's `NAME_stats.json` beside it stays the
shard's). A rerun redoes a sidecar whose listed size disagrees with its marker; `read_sidecar` checks the
bytes against it (a foreign write, even of the same size, is an error naming the file). A sidecar of an
older `l2i score`, without a marker, is read as it is (its single put was whole).
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from l2i_pipeline.core.commit import commit_shard
from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.storage import Store, as_store

SIDECAR_SCHEMA = pa.schema([("key", pa.string()), ("mask_score", pa.float32()), ("inpaint_score", pa.float32())])
SIDECAR_SUFFIX = "_scores.parquet"
SIDECAR_MARKER = "_scores.json"  # written last: the sidecar's size and sha256


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
    store = as_store(scores_dir)
    commit_shard(store, name, {SIDECAR_SUFFIX: buf.getvalue()}, {"count": len(keys)}, marker=SIDECAR_MARKER)
    return sidecar_path(store, name)


def sidecar_marker(store: Store, name: str) -> dict[str, Any] | None:
    """The marker of shard `name`'s sidecar, None when it has none (an older `l2i score`'s)."""
    try:
        return json.loads(store.get(f"{name}{SIDECAR_MARKER}"))
    except NotFound:
        return None


def torn_sidecar(store: Store, name: str, listing: dict[str, int]) -> str | None:
    """Why shard `name`'s sidecar, as listed ({object: size}), disagrees with its marker, or None."""
    marker = sidecar_marker(store, name) if f"{name}{SIDECAR_MARKER}" in listing else None
    obj = f"{name}{SIDECAR_SUFFIX}"
    want = ((marker or {}).get("files") or {}).get(obj)
    if marker is not None and obj not in listing:
        return f"{obj} is missing"
    if want and listing.get(obj) != want["size"]:
        return f"{obj} is {listing.get(obj)} bytes, its marker {name}{SIDECAR_MARKER} says {want['size']}"
    return None


def sidecar_bytes(store: Store, obj: str) -> bytes:
    """A sidecar read whole, checked against the size and sha256 its marker records (when it has one)."""
    data = store.get(obj)
    name = obj[: -len(SIDECAR_SUFFIX)] if obj.endswith(SIDECAR_SUFFIX) else None
    marker = sidecar_marker(store, name) if name is not None else None
    want = ((marker or {}).get("files") or {}).get(obj)
    if want and (len(data) != want["size"] or hashlib.sha256(data).hexdigest() != want["sha256"]):
        raise InputError(f"{store.url_of(obj)} does not match its marker {name}{SIDECAR_MARKER} (size {len(data)} "
                         f"vs {want['size']}): a torn or foreign write; rerun `l2i score` with --overwrite")
    return data


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
    rows = pq.read_table(io.BytesIO(sidecar_bytes(store, name))).to_pylist()
    return {r["key"]: {f: r[f] for f in ("mask_score", "inpaint_score")} for r in rows}


def digests(provenance: dict[str, Any]) -> dict[str, str | None]:
    """Task -> the sha256 of the classifier that made a sidecar's scores (from its provenance)."""
    return {t: d.get("sha256") for t, d in provenance.get("classifiers", {}).items()}
