"""Per-image results cached in the output, so an interrupted `l2i eval` resumes where it stopped.

A cache is a directory (a local path or a storage URL). Its units (eval/features.py) are committed as
shards are (core/commit.py): `unit-NNNNN.npz` (ids + one row per id), then `unit-NNNNN_stats.json` last,
with the npz's size and sha256 and the unit's unreadable images; a unit without its marker, or whose npz
disagrees with it, is not used. The rows an interrupted run had already computed for an unfinished unit
are kept as `part-NNNNN.npz` (ids + rows, the format older caches hold too). Rows are kept by id, so a
rerun computes only the ids no unit or part holds yet, from a local directory or a bucket alike.
"""
from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable

import numpy as np

from l2i_pipeline.core.commit import commit_shard
from l2i_pipeline.core.shards import read_marker, read_verified, verified_shards
from l2i_pipeline.core.storage import Store, as_store

log = logging.getLogger(__name__)
NPZ = ".npz"


def _npz(ids: list[str], rows: list[np.ndarray]) -> bytes:
    buf = io.BytesIO()
    if rows:
        np.savez(buf, ids=np.array(ids), rows=np.stack(rows))
    else:
        np.savez(buf, ids=np.array([], dtype=str), rows=np.zeros((0, 1)))
    return buf.getvalue()


class FeatureCache:
    def __init__(self, root: str | os.PathLike | Store):
        self.store = as_store(root)
        self.rows: dict[str, np.ndarray] = {}
        self.bad: dict[str, str] = {}  # unreadable images, as the committed units recorded them
        self.units: set[str] = set()
        self._parts = 0
        for part in self.store.list(NPZ):
            if part.startswith("part-"):
                self._load(self.store.get(part))
                self._parts += 1
        good, torn = verified_shards(self.store)
        for name, why in torn.items():
            log.warning("feature cache %s: unit %s is torn (%s): redoing it", self.store.url, name, why)
        for name in good:
            marker = read_marker(self.store, name)
            self._load(read_verified(self.store, name, NPZ, marker))
            self.bad.update(marker.get("bad") or {})
            self.units.add(name)

    def _load(self, data: bytes) -> None:
        with np.load(io.BytesIO(data)) as z:
            self.rows.update(zip(z["ids"].tolist(), z["rows"]))

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def commit_unit(self, name: str, rows: dict[str, np.ndarray], bad: dict[str, str]) -> None:
        """`name.npz` with `rows`, then its marker (sizes, digest, the unit's unreadable images) last."""
        ids = list(rows)
        commit_shard(self.store, name, {NPZ: _npz(ids, [np.asarray(rows[i]) for i in ids])},
                     {"count": len(ids), "bad": dict(sorted(bad.items()))})
        self.rows.update(rows)
        self.bad.update(bad)
        self.units.add(name)

    def keep_part(self, rows: dict[str, np.ndarray]) -> None:
        """Rows of an unfinished unit, kept for the rerun as `part-NNNNN.npz`."""
        if not rows:
            return
        ids = list(rows)
        self.store.makedirs()
        self.store.put(f"part-{self._parts:05d}{NPZ}", _npz(ids, [np.asarray(rows[i]) for i in ids]))
        self._parts += 1
        self.rows.update(rows)

    def get(self, ids) -> np.ndarray:
        return np.stack([self.rows[i] for i in ids if i in self.rows])


class BadImage(ValueError):
    """An image that cannot be decoded: left out of the metric and counted, never the end of the run."""


def compute_each(compute: Callable[[list], np.ndarray], batch: list, bad: dict[str, str]) -> tuple[list, list]:
    """A batch with a bad image in it, one item at a time: (ids, rows) of the good ones; the others into `bad`."""
    ids, rows = [], []
    for item in batch:
        try:
            rows.append(compute([item])[0])
            ids.append(item[0])
        except BadImage as e:
            bad[item[0]] = str(e)
    return ids, rows
