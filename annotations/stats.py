"""Team figures for the admin page: labels per task and annotator, throughput, balance, Cohen's kappa.

Kappa is computed on the overlap: every sample with two or more standing good/bad labels from different
annotators gives pairs (earlier label, later label). Pairs are pooled over annotator pairs, which is the
usual reading of Cohen's kappa when raters rotate ("first rater" vs "second rater").
"""
from __future__ import annotations

import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations, pairwise

from annotations.db import TASKS

ACTIVE_GAP_S = 300  # gaps between judgements longer than this count as a break, not working time


@dataclass
class Vote:
    key: str
    shard: str
    split: str
    task: str
    annotator: str
    label: str
    t: float
    event_id: int


def votes(conn: sqlite3.Connection) -> list[Vote]:
    """Every annotator's standing good/bad label, oldest first."""
    rows = conn.execute(
        "SELECT s.key, s.shard, s.split, c.task, u.name, c.value, c.t, c.id FROM current c"
        " JOIN samples s ON s.id = c.sample_id JOIN users u ON u.id = c.user_id"
        " WHERE c.value IN ('good', 'bad') ORDER BY c.id")
    return [Vote(*tuple(r)) for r in rows]


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of (rater A, rater B) label pairs; None when undefined (no pairs, or chance agreement 1)."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    ca, cb = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def active_hours(times: list[float]) -> float:
    """Working time from event timestamps, ignoring breaks; each judgement counts at least a few seconds."""
    if not times:
        return 0.0
    times = sorted(times)
    total = sum(min(b - a, ACTIVE_GAP_S) for a, b in pairwise(times))
    return max(total, 5.0 * len(times)) / 3600.0


def _annotators(conn: sqlite3.Connection, task: str, now: float) -> list[dict]:
    events = conn.execute(
        "SELECT u.name, e.t FROM events e JOIN users u ON u.id = e.user_id"
        " WHERE e.task = ? AND e.value != 'undo' ORDER BY e.t", (task,)).fetchall()
    times: dict[str, list[float]] = defaultdict(list)
    for name, t in events:
        times[name].append(t)
    standing = conn.execute(
        "SELECT u.name, c.value, COUNT(*) FROM current c JOIN users u ON u.id = c.user_id"
        " WHERE c.task = ? AND c.value != 'undo' GROUP BY u.name, c.value", (task,)).fetchall()
    counts: dict[str, Counter] = defaultdict(Counter)
    for name, value, n in standing:
        counts[name][value] = n
    out = []
    for name in sorted(set(times) | set(counts)):
        c, ts = counts[name], times[name]
        hours = active_hours(ts)
        out.append({
            "annotator": name, "labels": c["good"] + c["bad"], "good": c["good"], "bad": c["bad"],
            "skips": c["skip"], "last_hour": sum(t > now - 3600 for t in ts),
            "per_hour": round(len(ts) / hours, 1) if hours else None,
        })
    return out


def task_stats(conn: sqlite3.Connection, task: str, all_votes: list[Vote], overlap: float, now: float) -> dict:
    mine = [v for v in all_votes if v.task == task]
    by_sample: dict[str, list[Vote]] = defaultdict(list)
    for v in mine:
        by_sample[v.key].append(v)
    pairs, disagreements = [], []
    for key, vs in sorted(by_sample.items()):
        if len(vs) < 2:
            continue
        pairs += [(a.label, b.label) for a, b in combinations(vs, 2)]  # vs is oldest first
        if len({v.label for v in vs}) > 1:
            disagreements.append({"key": key, "split": vs[0].split,
                                  "labels": [{"annotator": v.annotator, "label": v.label} for v in vs]})
    labels = Counter(v.label for v in mine)
    pool = conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    overlap_pool = conn.execute("SELECT COUNT(*) FROM samples WHERE draw < ?", (overlap,)).fetchone()[0]
    kappa = cohen_kappa(pairs)
    return {
        "task": task, "pool": pool, "overlap_samples": overlap_pool,
        "labelled_samples": len(by_sample), "labels": len(mine),
        "good": labels["good"], "bad": labels["bad"],
        "good_share": round(labels["good"] / len(mine), 3) if mine else None,
        "last_hour": sum(v.t > now - 3600 for v in mine),
        "pairs": len(pairs),
        "agreement": round(sum(a == b for a, b in pairs) / len(pairs), 3) if pairs else None,
        "kappa": round(kappa, 3) if kappa is not None else None,
        "annotators": _annotators(conn, task, now),
        "disagreements": disagreements,
    }


def team_stats(conn: sqlite3.Connection, overlap: float) -> dict:
    now = time.time()
    all_votes = votes(conn)
    return {"generated": now, "overlap": overlap,
            "tasks": [task_stats(conn, t, all_votes, overlap, now) for t in TASKS]}
