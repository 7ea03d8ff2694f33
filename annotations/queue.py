"""Who labels what next: one good/bad label per sample and task, two for the overlap share.

A sample handed to an annotator is leased to them for a while, so two annotators working at once are not
shown the same single-label sample. An annotator never gets a sample they already have an event for in
that task (labelled, skipped or undone), except the one they explicitly undo. A label on an expired lease
is honoured only while the sample still has room for it: once others hold or have labelled all the labels
it needs, the late label is refused (409). A skipped sample may go to someone else; undoing the skip then
hands it back only if it still has room. And a label beyond what a sample needs is refused (409) whatever
the leases say, so a single-label sample never ends with two labels.

Order: the overlap samples that already have one label first, then the seeded random order. With
`strategy="uncertain"` and classifier scores in the database, the train split is served nearest the
decision threshold first; the test split stays in random order (it comes first in both strategies), so
metrics measured on it stay unbiased.
All decisions run inside one write transaction (BEGIN IMMEDIATE), so concurrent requests cannot race.
"""
from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass

from annotations import db

LEASE_SECONDS = 20 * 60
MAX_HELD = 20
STRATEGIES = ("random", "uncertain")


class QueueError(Exception):
    """A request the queue refuses (unknown sample, not assigned, nothing to undo): a 4xx."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Settings:
    overlap: float = 0.1  # share of samples shown to a second annotator
    lease_seconds: float = LEASE_SECONDS
    strategy: str = "random"  # random (the paper's protocol) | uncertain (train split by classifier score)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")


@dataclass
class Item:
    key: str
    split: str
    caption: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Progress:
    count: int  # this annotator's current good/bad labels in the task
    rate_per_hour: float  # judgements in the last 10 minutes, scaled to an hour
    remaining: int  # samples of the task that still need a label from someone

    def to_json(self) -> dict:
        return asdict(self)


_VOTES = ("SELECT sample_id, COUNT(*) AS n FROM latest"
          " WHERE task = :task AND value IN ('good', 'bad') GROUP BY sample_id")
_NEEDED = "(CASE WHEN s.draw < :overlap THEN 2 ELSE 1 END)"  # labels a sample needs


def _item(conn: sqlite3.Connection, sample_id: int) -> Item:
    row = conn.execute("SELECT key, split, caption FROM samples WHERE id = ?", (sample_id,)).fetchone()
    return Item(row["key"], row["split"], row["caption"])


def _sample_id(conn: sqlite3.Connection, key: str) -> int:
    row = conn.execute("SELECT id FROM samples WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise QueueError(404, "no such sample in the pool")
    return row["id"]


def next_items(conn: sqlite3.Connection, user_id: int, task: str, n: int, s: Settings) -> list[Item]:
    """The samples this annotator holds, topped up to n with new leases; oldest lease first."""
    n = max(1, min(int(n), MAX_HELD))
    now = time.time()
    p = {"u": user_id, "task": task, "now": now, "overlap": s.overlap, "uncertain": int(s.strategy == "uncertain")}
    with db.write(conn):
        held = [r["sample_id"] for r in conn.execute(
            "SELECT sample_id FROM leases WHERE user_id = :u AND task = :task AND expires > :now"
            " ORDER BY leased, sample_id", p)]
        want = n - len(held)
        fresh = []
        if want > 0:
            fresh = [r["id"] for r in conn.execute(
                f"""WITH votes AS ({_VOTES}),
                    held AS (SELECT sample_id, COUNT(*) AS n FROM leases
                             WHERE task = :task AND expires > :now AND user_id != :u GROUP BY sample_id)
                SELECT s.id FROM samples s
                LEFT JOIN votes v ON v.sample_id = s.id LEFT JOIN held h ON h.sample_id = s.id
                LEFT JOIN scores sc ON sc.task = :task AND sc.sample_id = s.id
                WHERE NOT EXISTS (SELECT 1 FROM events e
                                  WHERE e.user_id = :u AND e.task = :task AND e.sample_id = s.id)
                  AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.user_id = :u AND l.task = :task
                                  AND l.sample_id = s.id AND l.expires > :now)
                  AND COALESCE(v.n, 0) + COALESCE(h.n, 0) < {_NEEDED}
                ORDER BY COALESCE(v.n, 0) DESC, s.split = 'train',
                         CASE WHEN :uncertain AND s.split = 'train'
                              THEN COALESCE(ABS(sc.score - sc.threshold), 2.0) ELSE 0 END,
                         s.pos
                LIMIT :want""", {**p, "want": want})]
        expires = now + s.lease_seconds
        conn.execute("UPDATE leases SET expires = ? WHERE user_id = ? AND task = ? AND expires > ?",
                     (expires, user_id, task, now))
        conn.executemany(
            "INSERT OR REPLACE INTO leases (sample_id, task, user_id, leased, expires) VALUES (?, ?, ?, ?, ?)",
            [(sid, task, user_id, now + i * 1e-6, expires) for i, sid in enumerate(fresh)])
        return [_item(conn, sid) for sid in held + fresh]


def _needed(conn: sqlite3.Connection, p: dict) -> int:
    return conn.execute(f"SELECT {_NEEDED} FROM samples s WHERE s.id = :sid", p).fetchone()[0]


def _others(conn: sqlite3.Connection, p: dict, leases: bool) -> int:
    """Other annotators' standing good/bad labels on the sample, plus their live leases when `leases`."""
    n = conn.execute("SELECT COUNT(*) FROM latest WHERE task = :task AND sample_id = :sid AND user_id != :u"
                     " AND value IN ('good', 'bad')", p).fetchone()[0]
    if leases:
        n += conn.execute("SELECT COUNT(*) FROM leases WHERE task = :task AND sample_id = :sid AND user_id != :u"
                          " AND expires > :now", p).fetchone()[0]
    return n


def _replayed(conn: sqlite3.Connection, user_id: int, op: str | None) -> sqlite3.Row | None:
    """The event an earlier copy of this request made (same page-made id), if any."""
    if op is None:
        return None
    return conn.execute("SELECT sample_id, task, value FROM events WHERE user_id = ? AND op = ?",
                        (user_id, op)).fetchone()


def record(conn: sqlite3.Connection, user_id: int, task: str, key: str, value: str,
           s: Settings | None = None, op: str | None = None) -> None:
    """Append a good/bad/skip event for a sample the annotator holds, or held while it still has room.

    409 when it was never handed to them, or their lease lapsed and others now hold or have given all the
    labels it needs (the client then asks for new samples). A resent request (same `op` id, or one's own
    standing label again) is acknowledged without a second event.
    """
    if value not in ("good", "bad", "skip"):
        raise QueueError(422, "label must be good, bad or skip")
    s = s or Settings()
    now = time.time()
    with db.write(conn):
        sid = _sample_id(conn, key)
        done = _replayed(conn, user_id, op)
        if done is not None:
            if (done["sample_id"], done["task"], done["value"]) != (sid, task, value):
                raise QueueError(409, "this request id was already used for another label")
            return
        lease = conn.execute("SELECT expires FROM leases WHERE sample_id = ? AND task = ? AND user_id = ?",
                             (sid, task, user_id)).fetchone()
        mine = conn.execute("SELECT value FROM latest WHERE sample_id = ? AND task = ? AND user_id = ?",
                            (sid, task, user_id)).fetchone()
        if lease is None and mine is not None and mine["value"] == value:
            return  # one's own standing label, resent
        if lease is None and mine is None:
            raise QueueError(409, "this sample was not assigned to you in this task")
        live = lease is not None and lease["expires"] > now
        p = {"task": task, "sid": sid, "u": user_id, "now": now, "overlap": s.overlap}
        if value in ("good", "bad") and (mine is None or mine["value"] not in ("good", "bad")) \
                and _others(conn, p, leases=False) >= _needed(conn, p):
            raise QueueError(409, "this sample already has all the labels it needs from other annotators;"
                                  " fetch new samples")
        if not live and (mine is None or mine["value"] not in ("good", "bad")) \
                and _others(conn, p, leases=True) >= _needed(conn, p):
            raise QueueError(409, "your lease on this sample expired and it went to another annotator;"
                                  " fetch new samples")
        conn.execute("INSERT INTO events (user_id, sample_id, task, value, t, op) VALUES (?, ?, ?, ?, ?, ?)",
                     (user_id, sid, task, value, now, op))
        conn.execute("DELETE FROM leases WHERE sample_id = ? AND task = ? AND user_id = ?", (sid, task, user_id))


@dataclass
class Undone:
    item: Item
    served: bool  # False: the sample went to others since (a skip gives up its place); only the skip is withdrawn


def undo(conn: sqlite3.Connection, user_id: int, task: str, s: Settings, op: str | None = None) -> Undone:
    """Undo the annotator's most recent standing judgement in the task; they hold that sample again.

    A skipped sample may have gone to others meanwhile: when their labels and leases fill all it needs, the skip
    is withdrawn (so the next undo walks further back) but the sample is not handed back.
    """
    now = time.time()
    with db.write(conn):
        done = _replayed(conn, user_id, op)
        if done is not None:  # a resent undo: answer as the first time, undo nothing more
            held = conn.execute("SELECT 1 FROM leases WHERE sample_id = ? AND task = ? AND user_id = ?",
                                (done["sample_id"], task, user_id)).fetchone()
            return Undone(_item(conn, done["sample_id"]), held is not None)
        row = conn.execute(
            "SELECT sample_id, value FROM current WHERE user_id = ? AND task = ? AND value != 'undo'"
            " ORDER BY id DESC LIMIT 1", (user_id, task)).fetchone()
        if row is None:
            raise QueueError(409, "nothing to undo")
        sid = row["sample_id"]
        p = {"task": task, "sid": sid, "u": user_id, "now": now, "overlap": s.overlap}
        served = row["value"] in ("good", "bad") or _others(conn, p, leases=True) < _needed(conn, p)
        conn.execute("INSERT INTO events (user_id, sample_id, task, value, t, op) VALUES (?, ?, ?, 'undo', ?, ?)",
                     (user_id, sid, task, now, op))
        if served:
            conn.execute(
                "INSERT OR REPLACE INTO leases (sample_id, task, user_id, leased, expires) VALUES (?, ?, ?, ?, ?)",
                (sid, task, user_id, 0.0, now + s.lease_seconds))  # leased=0: first in line
        return Undone(_item(conn, sid), served)


def progress(conn: sqlite3.Connection, user_id: int, task: str, s: Settings) -> Progress:
    now = time.time()
    count = conn.execute("SELECT COUNT(*) FROM current WHERE user_id = ? AND task = ? AND value IN ('good', 'bad')",
                         (user_id, task)).fetchone()[0]
    recent = conn.execute("SELECT COUNT(*) FROM events WHERE user_id = ? AND task = ? AND value != 'undo'"
                          " AND t > ?", (user_id, task, now - 600)).fetchone()[0]
    remaining = conn.execute(
        f"""WITH votes AS ({_VOTES})
        SELECT COUNT(*) FROM samples s LEFT JOIN votes v ON v.sample_id = s.id
        WHERE COALESCE(v.n, 0) < {_NEEDED}""",
        {"task": task, "overlap": s.overlap}).fetchone()[0]
    return Progress(count, recent * 6.0, remaining)
