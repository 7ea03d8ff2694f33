"""Committing an output shard (docs/ARCHITECTURE.md, "Unit of work, commit, resume").

An output shard is `NAME.tar`, `NAME.parquet` and `NAME_stats.json`. Commit protocol (it works on stores
without rename):
- the bytes are deterministic (sorted keys, no wall-clock times in the tar: formats/tar.py), so any attempt
  at a shard writes the same objects and a retried or zombie attempt cannot disagree with another;
- each file is built in memory and uploaded whole, data files first, the marker `NAME_stats.json` last;
- the marker records each data file's size and sha256; readers (core/shards.py) list markers once and check
  sizes against the listing (and digests when they read a file whole), so a half-written shard is
  invisible and a torn one is an error, never silently used;
- a shard without a marker is redone and its leftovers are overwritten.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from l2i_pipeline.core.sample import Sample
from l2i_pipeline.core.storage import Store, as_store
from l2i_pipeline.formats.index import index_row, parquet_bytes
from l2i_pipeline.formats.names import MARKER, PARQUET, TAR
from l2i_pipeline.formats.tar import sample_tar

Entry = tuple[str, dict[str, Any], "dict[str, bytes] | None"]  # (key, index row, members of an ok sample)


def tar_bytes(entries: list[Entry]) -> bytes:
    """The tar of the ok samples' members, byte for byte the same for the same samples."""
    return sample_tar((key, members) for key, _, members in entries if members is not None)


def sample_entries(samples: list[Sample]) -> list[Entry]:
    return [(s.key, index_row(s.key, s.status, s.reason, s.caption, s.meta), s.members if s.ok else None)
            for s in samples]


def write_output_shard(out: Store | str, name: str, samples: list[Sample],
                       extra_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write tar (ok samples), parquet (all samples), then the marker vouching for both; returns the stats."""
    return commit_entries(out, name, sample_entries(samples), extra_stats or {})


def commit_entries(out: Store | str, name: str, entries: list[Entry], extra: dict[str, Any]) -> dict[str, Any]:
    """One entry per key (the first wins), sorted by key, then committed as a shard."""
    entries = sorted({e[0]: e for e in reversed(entries)}.values(), key=lambda e: e[0])
    rows = [row for _, row, _ in entries]
    stats = {
        "name": name,
        "count": len(rows),
        "status": dict(Counter(r["status"] for r in rows)),
        "reasons": dict(Counter(r["reason"] for r in rows if r["status"] != "ok")),
        **extra,
    }
    return commit_shard(out, name, {TAR: tar_bytes(entries), PARQUET: parquet_bytes(rows)}, stats)


def commit_shard(out: Store | str, name: str, files: dict[str, bytes], stats: dict[str, Any],
                 marker: str = MARKER) -> dict[str, Any]:
    """Upload `NAME<suffix>` for each file whole, then the marker `NAME<marker>` with their sizes and digests
    (a score sidecar beside an L2I shard has its own marker suffix, so the shard's stays the shard's)."""
    out = as_store(out)
    out.makedirs()
    for suffix, data in files.items():
        out.put(f"{name}{suffix}", data)
    stats = {**stats, "files": {f"{name}{suffix}": file_record(data) for suffix, data in files.items()}}
    out.put(f"{name}{marker}", json.dumps(stats, indent=2, sort_keys=True, default=str).encode())
    return stats


def file_record(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
