"""The labels database: one SQLite file in WAL mode, so many readers and one writer never block each other.

Label events are append-only (triggers refuse UPDATE and DELETE): an annotator's latest event for a
(sample, task) is their current answer, and undo is just another event. Nothing a user does can erase history.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from l2i_pipeline.core.errors import NotFound

TASKS = ("mask", "inpaint")
LABELS = ("good", "bad")
EVENT_VALUES = ("good", "bad", "skip", "undo")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    shard TEXT NOT NULL,
    split TEXT NOT NULL CHECK (split IN ('train', 'test')),
    pos INTEGER NOT NULL,          -- position in the seeded shuffle: the queue order
    draw REAL NOT NULL,            -- uniform [0, 1): the sample is in the overlap when draw < overlap
    caption TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS members (
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    member TEXT NOT NULL,
    offset INTEGER NOT NULL,       -- TarInfo.offset_data: first byte of the member's data in SHARD.tar
    size INTEGER NOT NULL,
    PRIMARY KEY (sample_id, member)
);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    is_admin INTEGER NOT NULL DEFAULT 0,
    token_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id),
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    task TEXT NOT NULL CHECK (task IN ('mask', 'inpaint')),
    value TEXT NOT NULL CHECK (value IN ('good', 'bad', 'skip', 'undo')),
    t REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, task, sample_id);
CREATE INDEX IF NOT EXISTS events_by_sample ON events (task, sample_id);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'label events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'label events are append-only'); END;
CREATE TABLE IF NOT EXISTS leases (
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    task TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id),
    leased REAL NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (sample_id, task, user_id)
);
-- Each annotator's latest event per (sample, task), kept by a trigger in the inserting transaction: a derived
-- index over the append-only log (rebuildable from it), so the queue does not rescan history per request.
CREATE TABLE IF NOT EXISTS latest (
    user_id INTEGER NOT NULL,
    task TEXT NOT NULL,
    sample_id INTEGER NOT NULL,
    value TEXT NOT NULL,
    event_id INTEGER NOT NULL REFERENCES events(id),
    PRIMARY KEY (user_id, task, sample_id)
);
CREATE INDEX IF NOT EXISTS latest_by_sample ON latest (task, sample_id, value);
CREATE TRIGGER IF NOT EXISTS events_latest AFTER INSERT ON events
    BEGIN INSERT OR REPLACE INTO latest (user_id, task, sample_id, value, event_id)
          VALUES (NEW.user_id, NEW.task, NEW.sample_id, NEW.value, NEW.id); END;
-- Each annotator's current answer per (sample, task). CROSS JOIN keeps `latest` (indexed) as the outer loop.
CREATE VIEW IF NOT EXISTS current AS
    SELECT e.id, l.user_id, l.sample_id, l.task, l.value, e.t FROM latest l CROSS JOIN events e ON e.id = l.event_id;
"""


def connect(path: str | Path, create: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit, see `write`), rows as sqlite3.Row.

    check_same_thread is off because a web request may open it in one worker thread and use it in
    another; a connection is still never used by two threads at once.
    """
    path = Path(path)
    if not create and not path.exists():
        raise NotFound(f"labels database not found: {path} (create it with `l2i annotate pool`)")
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA foreign_keys = ON")
    if create:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA)
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across app crashes
    return conn


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the write lock up front, so read-then-write decisions stay valid."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
    return row["v"] if row else default
