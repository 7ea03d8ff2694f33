"""The labels database: one SQLite file in WAL mode, so many readers and one writer never block each other.

Label events are append-only (triggers refuse UPDATE and DELETE): an annotator's latest event for a
(sample, task) is their current answer, and undo is just another event. Nothing a user does can erase history.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from l2i_pipeline.core.errors import InputError, NotFound

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
    created REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked', 'removed'))
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
    t REAL NOT NULL,
    op TEXT                        -- the page's id for the request: a resent request is not a second event
);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, task, sample_id);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_op ON events (user_id, op) WHERE op IS NOT NULL;
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
-- Who did what to accounts and when the app was served how: an append-only audit log.
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t REAL NOT NULL,
    action TEXT NOT NULL,          -- add, revoke, rotate, remove, set-role, serve
    name TEXT NOT NULL DEFAULT '', -- the account acted on
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
-- Classifier P(good) per pool sample and task, for `--strategy uncertain`; replaced per task when loaded.
CREATE TABLE IF NOT EXISTS scores (
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    task TEXT NOT NULL CHECK (task IN ('mask', 'inpaint')),
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    PRIMARY KEY (task, sample_id)
);
-- Each annotator's current answer per (sample, task). CROSS JOIN keeps `latest` (indexed) as the outer loop.
CREATE VIEW IF NOT EXISTS current AS
    SELECT e.id, l.user_id, l.sample_id, l.task, l.value, e.t FROM latest l CROSS JOIN events e ON e.id = l.event_id;
"""


SCHEMA_VERSION = 3  # 2: account status, audit log, classifier scores; 3: events.op


def connect(path: str | Path, create: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit, see `write`), rows as sqlite3.Row.

    Without `create` the file must be an existing labels database (a typo'd --db is an error, not a new
    empty file); an older one is upgraded in place. check_same_thread is off because a web request may open
    it in one worker thread and use it in another; a connection is still never used by two threads at once.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"--db {path} is a directory, not a labels database file")
    if create and not path.parent.is_dir():
        raise NotFound(f"directory {path.parent} does not exist (for --db {path})")
    if not create and not path.exists():
        raise NotFound(f"labels database not found: {path} (create it with `l2i annotate pool`)")
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        if create:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            _upgrade(conn, path)
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across app crashes
    except sqlite3.DatabaseError as e:
        conn.close()
        raise InputError(f"--db {path} is not an SQLite labels database ({e})") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Bring a database made by an older version up to SCHEMA_VERSION (idempotent, safe to race)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"samples", "users", "events"} <= tables:
        raise InputError(f"--db {path} is an SQLite file but not a labels database (no pool tables)")
    with write(conn):
        if "status" not in {r["name"] for r in conn.execute("PRAGMA table_info(users)")}:
            conn.execute("ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'active'")
        if "op" not in {r["name"] for r in conn.execute("PRAGMA table_info(events)")}:
            conn.execute("ALTER TABLE events ADD COLUMN op TEXT")
    conn.executescript(SCHEMA)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def require_pool(conn: sqlite3.Connection, path: str | Path) -> None:
    """Refuse a database without a pool: accounts and serving only make sense on one."""
    if not conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]:
        raise InputError(f"--db {path} has no pool; draw one first with `l2i annotate pool --db {path}`")


def open_pool(path: str | Path) -> sqlite3.Connection:
    """An existing labels database with a pool: a typo'd --db is an error, never a new empty file."""
    conn = connect(path)
    try:
        require_pool(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def audit(conn: sqlite3.Connection, action: str, name: str = "", **detail) -> None:
    """Append to the audit log (inside the caller's transaction when there is one)."""
    conn.execute("INSERT INTO audit (t, action, name, detail) VALUES (?, ?, ?, ?)",
                 (time.time(), action, name, json.dumps(detail, sort_keys=True)))


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
