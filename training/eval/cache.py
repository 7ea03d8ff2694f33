"""Per-image results cached in the output, so an interrupted `l2i eval` resumes where it stopped.

A cache is a directory (a local path or a storage URL) of `part-NNNNN.npz` objects (ids + one row per id),
each one whole-object put through the storage layer; rows are kept by id, so a rerun computes only the ids
no part holds yet, from a local directory or a bucket alike.
"""
from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from l2i_pipeline.core.storage import Store, as_store


class FeatureCache:
    def __init__(self, root: str | os.PathLike | Store, flush_every: int = 256):
        self.store = as_store(root)
        self.flush_every = flush_every
        self.rows: dict[str, np.ndarray] = {}
        self._pending: list[str] = []
        self._parts = 0
        for part in self.store.list(".npz"):
            if part.startswith("part-"):
                with np.load(io.BytesIO(self.store.get(part))) as z:
                    self.rows.update(zip(z["ids"].tolist(), z["rows"]))
                self._parts += 1

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, ids: list[str], rows: np.ndarray) -> None:
        for i, r in zip(ids, rows):
            self.rows[i] = np.asarray(r)
        self._pending += ids
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        buf = io.BytesIO()
        np.savez(buf, ids=np.array(self._pending), rows=np.stack([self.rows[i] for i in self._pending]))
        self.store.put(f"part-{self._parts:05d}.npz", buf.getvalue())
        self._parts += 1
        self._pending = []

    def get(self, ids: Iterable[str]) -> np.ndarray:
        return np.stack([self.rows[i] for i in ids if i in self.rows])


def batched(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


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


def fill(cache: FeatureCache, keys: list[str], read: Callable[[set[str]], Iterator],
         compute: Callable[[list], np.ndarray], batch_size: int, desc: str) -> dict[str, str]:
    """Compute `compute(batch of items) -> rows` for every key the cache lacks; returns {key: why} of bad images."""
    todo = {k for k in keys if k not in cache}
    bad: dict[str, str] = {}
    with tqdm(total=len(keys), initial=len(keys) - len(todo), desc=desc, unit="img", disable=None) as bar:
        try:
            for batch in batched(read(todo), batch_size):
                try:
                    cache.add([item[0] for item in batch], compute(batch))
                except BadImage:
                    ids, rows = compute_each(compute, batch, bad)
                    if ids:
                        cache.add(ids, np.stack(rows))
                bar.update(len(batch))
        finally:
            cache.flush()
    return bad
