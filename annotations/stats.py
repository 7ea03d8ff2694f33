"""Team figures for the admin page: labels per task and annotator, throughput, balance, agreement.

Agreement is computed on the overlap (samples with standing good/bad labels from two or more annotators):
Cohen's kappa per annotator pair, rater A being the name that sorts first, so the figure does not depend on
who happened to label first; and Fleiss' kappa (unequal raters per sample allowed) over all overlapping
samples when more than two annotators take part. Each comes with its counts.
"""
from __future__ import annotations

import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations, pairwise

from annotations.db import LABELS, TASKS

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


def fleiss_kappa(ratings: list[Counter]) -> float | None:
    """Fleiss' kappa of per-sample label counts (each sample rated by >= 2); None when undefined."""
    items = [c for c in ratings if sum(c.values()) >= 2]
    if not items:
        return None
    totals: Counter = Counter()
    p_bar = 0.0
    for c in items:
        n = sum(c.values())
        p_bar += (sum(v * v for v in c.values()) - n) / (n * (n - 1))
        totals.update(c)
    p_bar /= len(items)
    all_n = sum(totals.values())
    p_e = sum((v / all_n) ** 2 for v in totals.values())
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def _r(x: float | None) -> float | None:
    return round(x, 3) if x is not None else None


def agreement(by_sample: dict[str, list[Vote]]) -> dict:
    """Pairwise Cohen's kappa (fixed rater order) and, with more than two raters, Fleiss' kappa."""
    per_pair: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    overlapping = [vs for vs in by_sample.values() if len(vs) >= 2]
    for vs in overlapping:
        label = {v.annotator: v.label for v in vs}
        for a, b in combinations(sorted(label), 2):
            per_pair[(a, b)].append((label[a], label[b]))
    pairs = []
    for (a, b), ps in sorted(per_pair.items()):
        table = Counter(f"{x}/{y}" for x, y in ps)
        pairs.append({"a": a, "b": b, "samples": len(ps), "agreements": sum(x == y for x, y in ps),
                      "a_good": sum(x == "good" for x, _ in ps), "b_good": sum(y == "good" for _, y in ps),
                      "table": {f"{x}/{y}": table[f"{x}/{y}"] for x in LABELS for y in LABELS},
                      "kappa": _r(cohen_kappa(ps))})
    raters = sorted({v.annotator for vs in overlapping for v in vs})
    fleiss = None
    if len(raters) > 2:
        fleiss = {"kappa": _r(fleiss_kappa([Counter(v.label for v in vs) for vs in overlapping])),
                  "samples": len(overlapping), "raters": len(raters),
                  "ratings": sum(len(vs) for vs in overlapping)}
    if fleiss is not None:
        headline, kind = fleiss["kappa"], "fleiss"
    elif len(pairs) == 1:
        headline, kind = pairs[0]["kappa"], "cohen"
    else:
        headline, kind = None, None
    return {"kappa": headline, "kappa_kind": kind, "kappa_pairs": pairs, "fleiss": fleiss}


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
        pairs += [(a.label, b.label) for a, b in combinations(vs, 2)]
        if len({v.label for v in vs}) > 1:
            disagreements.append({"key": key, "split": vs[0].split,
                                  "labels": [{"annotator": v.annotator, "label": v.label} for v in vs]})
    labels = Counter(v.label for v in mine)
    pool = conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    overlap_pool = conn.execute("SELECT COUNT(*) FROM samples WHERE draw < ?", (overlap,)).fetchone()[0]
    return {
        "task": task, "pool": pool, "overlap_samples": overlap_pool,
        "labelled_samples": len(by_sample), "labels": len(mine),
        "good": labels["good"], "bad": labels["bad"],
        "good_share": round(labels["good"] / len(mine), 3) if mine else None,
        "last_hour": sum(v.t > now - 3600 for v in mine),
        "pairs": len(pairs),
        "agreement": round(sum(a == b for a, b in pairs) / len(pairs), 3) if pairs else None,
        **agreement(by_sample),
        "annotators": _annotators(conn, task, now),
        "disagreements": disagreements,
    }


def team_stats(conn: sqlite3.Connection, overlap: float) -> dict:
    now = time.time()
    all_votes = votes(conn)
    return {"generated": now, "overlap": overlap,
            "tasks": [task_stats(conn, t, all_votes, overlap, now) for t in TASKS]}
