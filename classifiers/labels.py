"""Label exports of the annotation app (JSONL or parquet; key, shard, task, label, annotator, time, split)
resolved to one label per (shard, key), and the labelled samples fetched from L2I(U) shards."""
from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.features import decode_members, prepare
from l2i_pipeline.core import shards
from l2i_pipeline.core.errors import InputError, NotFound

log = logging.getLogger(__name__)


@dataclass
class Labelled:
    key: str
    shard: str | None
    good: bool
    split: str  # train | test


def read_export(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"label export not found: {p} (made by the annotation app's export)")
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(p).to_pylist()
    rows = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InputError(f"{p}:{n}: not JSON ({e})") from None
    return rows


def resolve(rows: list[dict[str, Any]], task: str) -> list[Labelled]:
    """One label per sample for `task`: majority of annotators, ties to the latest annotation."""
    votes: dict[tuple, list[tuple[str, str]]] = defaultdict(list)
    split: dict[tuple, str] = {}
    for r in rows:
        if r.get("task") != task or r.get("label") not in ("good", "bad"):
            continue
        ident = (r.get("shard"), str(r["key"]))
        votes[ident].append((str(r.get("time") or ""), r["label"]))
        split[ident] = r.get("split") or split.get(ident) or "train"
    out = []
    for ident, vs in sorted(votes.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        count = Counter(label for _, label in vs)
        if count["good"] == count["bad"]:
            good = max(vs)[1] == "good"
        else:
            good = count["good"] > count["bad"]
        out.append(Labelled(ident[1], ident[0], good, "test" if split[ident] == "test" else "train"))
    return out


def label_counts(items: list[Labelled]) -> dict[str, dict[str, int]]:
    c: dict[str, dict[str, int]] = {}
    for it in items:
        d = c.setdefault(it.split, {"good": 0, "bad": 0})
        d["good" if it.good else "bad"] += 1
    return c


def iter_prepared(samples_dir: str | Path, items: list[Labelled], task: str, size: int
                  ) -> Iterator[tuple[np.ndarray, Labelled]]:
    """(prepared input size x size x C uint8, its label) for each labelled sample found in the shards."""
    from tqdm import tqdm

    wanted: dict[str, dict[str, Labelled]] = defaultdict(dict)
    unsharded = {it.key: it for it in items if not it.shard}
    if unsharded:  # exports without a shard column: find the shard from the indexes
        index = shards.read_output_index(samples_dir).select(["key", "shard", "status"]).to_pylist()
        for row in index:
            if row["status"] == "ok" and row["key"] in unsharded:
                wanted[row["shard"]][row["key"]] = unsharded[row["key"]]
    for it in items:
        if it.shard:
            wanted[it.shard][it.key] = it
    found = 0
    with tqdm(total=len(items), desc=f"{task} labelled samples", unit="sample") as bar:
        for name in sorted(wanted):
            if not shards.is_complete(samples_dir, name):
                log.warning("shard %s named by the labels is not a complete shard of %s; skipped", name, samples_dir)
                continue
            for key, members in shards.iter_output_samples(samples_dir, name):
                if key in wanted[name]:
                    found += 1
                    bar.update()
                    yield prepare(task, size, **decode_members(members, task)), wanted[name][key]
    if found < len(items):
        log.warning("%d of %d labelled samples were not found in %s", len(items) - found, len(items), samples_dir)
    if not found:
        raise NotFound(f"none of the {len(items)} labelled {task} samples is in {samples_dir}")
