"""Resolved labels for the classifiers: one row per (sample, task), majority of the standing good/bad labels.

Columns (the classifier trainer reads exactly these): key, shard, task (`mask` | `inpaint`),
label (`good` | `bad`), annotator (the names behind the winning label, comma-separated), time (ISO 8601 UTC
of the latest winning label), split (`train` | `test`). Ties are left out and counted; skips are no votes.

`--all-labels` writes every annotator's standing good/bad label instead, one row per (sample, task,
annotator), same columns (annotator: one name, time: that label's), so agreement can be recomputed; the
classifier trainer resolves such a file by majority too.

Beside the export, `FILE.meta.json` (and, for Parquet, the schema metadata `l2i_export`) records how the
labels came about: the pool (seed, sizes, source), the queue strategies the app was served with, the score
sources used for ranking, and the label counts, so a reader can tell random labels from actively chosen ones.
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

from annotations.db import TASKS, get_meta
from annotations.stats import Vote, votes
from l2i_pipeline.core.errors import ConfigError, InputError

COLUMNS = ("key", "shard", "task", "label", "annotator", "time", "split")
FORMATS = ("jsonl", "parquet")
EXTENSIONS = {".jsonl": "jsonl", ".parquet": "parquet"}


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


def all_labels(conn: sqlite3.Connection) -> tuple[list[Row], ExportSummary]:
    """Every standing good/bad label, one row per annotator; the summary counts them (no ties here)."""
    rows, summary = [], ExportSummary()
    for v in votes(conn):
        rows.append(Row(v.key, v.shard, v.task, v.label, v.annotator, iso(v.t), v.split))
        summary.rows[v.task][v.label] += 1
    rows.sort(key=lambda r: (r.task != "mask", r.key, r.annotator))
    return rows, summary


def describe(conn: sqlite3.Connection, summary: ExportSummary, n_rows: int, kind: str = "resolved") -> dict:
    """What the export's labels are: pool, strategies served, score sources, counts."""
    served = [json.loads(d) for d, in conn.execute("SELECT detail FROM audit WHERE action = 'serve' ORDER BY id")]
    scored = [json.loads(d) for d, in conn.execute("SELECT detail FROM audit WHERE action = 'scores' ORDER BY id")]
    strategies = sorted({d.get("strategy", "random") for d in served})
    splits = dict(conn.execute("SELECT split, COUNT(*) FROM samples GROUP BY split").fetchall())
    return {
        "pool": {k: get_meta(conn, k) for k in ("seed", "size", "test", "samples_dir")}
        | {"train_samples": splits.get("train", 0), "test_samples": splits.get("test", 0)},
        "strategy": strategies[0] if len(strategies) == 1 else ("mixed" if strategies else "random"),
        "strategies_served": strategies,
        "score_sources": scored,
        "rows": n_rows,
        "kind": kind,  # resolved: one row per (sample, task); all_labels: one per (sample, task, annotator)
        "labels": {t: {"good": summary.rows[t]["good"], "bad": summary.rows[t]["bad"], "ties": summary.ties[t]}
                   for t in TASKS},
        "exported": iso(datetime.now(timezone.utc).timestamp()),
    }


def meta_path(out: str | Path) -> Path:
    return Path(f"{out}.meta.json")


def write_export(rows: list[Row], out: str | Path, fmt: str, meta: dict | None = None) -> None:
    """Write atomically (temp file + rename), so a reader never sees half an export; then FILE.meta.json."""
    out = Path(out)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if fmt == "jsonl":
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows)
    else:
        schema = pa.schema([(c, pa.string()) for c in COLUMNS])
        table = pa.Table.from_pylist([asdict(r) for r in rows], schema=schema)
        if meta is not None:
            table = table.replace_schema_metadata({"l2i_export": json.dumps(meta, sort_keys=True)})
        pq.write_table(table, tmp)
    tmp.replace(out)
    if meta is not None:
        side = meta_path(out)
        tmp = side.with_name(f".{side.name}.tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        tmp.replace(side)


def format_for(path: str | Path, fmt: str | None) -> str:
    """The format from the file's extension (.jsonl or .parquet); --format may only confirm it.

    A directory, another extension or a contradiction is refused rather than guessed at: the classifier
    trainer picks its reader by extension too.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"--out {path} is a directory; give a file name ending in .jsonl or .parquet")
    by_ext = EXTENSIONS.get(path.suffix.lower())
    if by_ext is None:
        raise ConfigError(f"--out {path}: unknown extension {path.suffix or '(none)'!r}; use .jsonl or .parquet")
    if fmt and fmt != by_ext:
        raise ConfigError(f"--format {fmt} contradicts the extension of --out {path}")
    return by_ext
