"""Resolved labels for the classifiers: one row per (sample, task), majority of the standing good/bad labels.

Columns (the classifier trainer reads exactly these): key, shard, task (`mask` | `inpaint`),
label (`good` | `bad`), annotator (the names behind the winning label, comma-separated), time (ISO 8601 UTC
of the latest winning label), split (`train` | `test`). Ties are left out and counted; skips are no votes.
"""
from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from annotations.db import TASKS
from annotations.stats import Vote, votes

COLUMNS = ("key", "shard", "task", "label", "annotator", "time", "split")
FORMATS = ("jsonl", "parquet")


@dataclass
class Row:
    key: str
    shard: str
    task: str
    label: str
    annotator: str
    time: str
    split: str


@dataclass
class ExportSummary:
    rows: dict[str, Counter] = field(default_factory=lambda: {t: Counter() for t in TASKS})  # task -> label -> n
    ties: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TASKS})


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def resolve(conn: sqlite3.Connection) -> tuple[list[Row], ExportSummary]:
    grouped: dict[tuple[str, str], list[Vote]] = defaultdict(list)
    for v in votes(conn):
        grouped[(v.key, v.task)].append(v)
    rows, summary = [], ExportSummary()
    for (key, task), vs in sorted(grouped.items(), key=lambda kv: (kv[0][1] != "mask", kv[0])):
        (top, n_top), *rest = Counter(v.label for v in vs).most_common()
        if rest and rest[0][1] == n_top:
            summary.ties[task] += 1
            continue
        winners = [v for v in vs if v.label == top]
        rows.append(Row(key, vs[0].shard, task, top, ",".join(sorted({v.annotator for v in winners})),
                        iso(max(v.t for v in winners)), vs[0].split))
        summary.rows[task][top] += 1
    return rows, summary


def write_export(rows: list[Row], out: str | Path, fmt: str) -> None:
    """Write atomically (temp file + rename), so a reader never sees half an export."""
    out = Path(out)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if fmt == "jsonl":
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows)
    else:
        schema = pa.schema([(c, pa.string()) for c in COLUMNS])
        pq.write_table(pa.Table.from_pylist([asdict(r) for r in rows], schema=schema), tmp)
    tmp.replace(out)


def format_for(path: str | Path, fmt: str | None) -> str:
    """--format wins; otherwise the file's extension decides, jsonl by default."""
    if fmt:
        return fmt
    return "parquet" if str(path).endswith(".parquet") else "jsonl"
