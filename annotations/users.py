"""Annotator accounts and browser sessions, and the account lifecycle (revoke, rotate, remove, set-role).

Every account change is written to the audit log in the same transaction. Only `active` accounts log in,
and sessions are checked against the account on every request, so a revoke takes effect at once.
Tokens and session ids are 192-bit random strings, so a plain SHA-256 is a sufficient hash: only hashes
are stored, and a stolen database file logs nobody in.
"""
from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass

from annotations import db
from l2i_pipeline.core.errors import InputError, NotFound

SESSION_SECONDS = 7 * 24 * 3600
MAX_SESSIONS = 5  # live sessions per user (devices, browsers); a new login ends the oldest beyond this


ROLES = ("annotator", "admin")


@dataclass
class User:
    id: int
    name: str
    is_admin: bool
    status: str = "active"

    @property
    def role(self) -> str:
        return "admin" if self.is_admin else "annotator"


@dataclass
class Session:
    user: User
    csrf: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def valid_name(name: str) -> bool:
    return 0 < len(name) <= 64 and name.isprintable() and name.strip() == name


def add_user(conn: sqlite3.Connection, name: str, is_admin: bool = False, reuse_name: bool = False) -> str:
    """Create a user; returns the token, which is shown once and never stored. `reuse_name`: a removed user's
    name goes to the new account, the removed one being renamed NAME~removed-ID (its labels stay its own)."""
    if not valid_name(name):
        raise InputError(f"bad user name {name!r}: 1-64 printable characters, no surrounding spaces")
    token = secrets.token_urlsafe(24)
    try:
        with db.write(conn):
            old = conn.execute("SELECT id, status FROM users WHERE name = ?", (name,)).fetchone()
            if old is not None and old["status"] == "removed":
                if not reuse_name:
                    raise InputError(f"user {name!r} was removed; `users restore {name}` brings that account (and "
                                     f"its labels) back, `users add {name} --reuse-name` gives the name to a new one")
                renamed = f"{name}~removed-{old['id']}"  # the old account's labels keep a name of their own
                conn.execute("UPDATE users SET name = ? WHERE id = ?", (renamed, old["id"]))
                db.audit(conn, "rename", name, to=renamed)
            conn.execute("INSERT INTO users (name, is_admin, token_hash, created) VALUES (?, ?, ?, ?)",
                         (name, int(is_admin), token_hash(token), time.time()))
            db.audit(conn, "add", name, role="admin" if is_admin else "annotator")
    except sqlite3.IntegrityError:
        raise InputError(f"user {name!r} already exists") from None
    return token


def restore_user(conn: sqlite3.Connection, name: str) -> str:
    """Bring a removed account back, with its labels and a new token (returned, shown once)."""
    token = secrets.token_urlsafe(24)
    with db.write(conn):
        row = conn.execute("SELECT id, status FROM users WHERE name = ?", (name,)).fetchone()
        if row is None or row["status"] != "removed":
            raise NotFound(f"no removed user {name!r} (see `l2i annotate users list --all`)")
        conn.execute("UPDATE users SET status = 'active', token_hash = ? WHERE id = ?", (token_hash(token), row["id"]))
        db.audit(conn, "restore", name)
    return token


def list_users(conn: sqlite3.Connection, include_removed: bool = False) -> list[User]:
    rows = conn.execute("SELECT id, name, is_admin, status FROM users ORDER BY name")
    return [User(r["id"], r["name"], bool(r["is_admin"]), r["status"]) for r in rows
            if include_removed or r["status"] != "removed"]


def get_user(conn: sqlite3.Connection, name: str) -> User:
    row = conn.execute("SELECT id, name, is_admin, status FROM users WHERE name = ?", (name,)).fetchone()
    if row is None or row["status"] == "removed":
        raise NotFound(f"no user {name!r} (see `l2i annotate users list`)")
    return User(row["id"], row["name"], bool(row["is_admin"]), row["status"])


def _end_access(conn: sqlite3.Connection, user_id: int) -> int:
    """Drop the user's live sessions and leases (their held samples go back to the queue); returns sessions."""
    n = conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,)).rowcount
    conn.execute("DELETE FROM leases WHERE user_id = ?", (user_id,))
    return n


def revoke_user(conn: sqlite3.Connection, name: str) -> int:
    """The token and every live session stop working at once; labels stay. Returns the sessions ended."""
    with db.write(conn):
        user = get_user(conn, name)
        # a fresh random hash: the old token can never match again, even after a later rotate
        conn.execute("UPDATE users SET status = 'revoked', token_hash = ? WHERE id = ?",
                     (token_hash(secrets.token_urlsafe(24)), user.id))
        n = _end_access(conn, user.id)
        db.audit(conn, "revoke", name, sessions=n)
    return n


def rotate_user(conn: sqlite3.Connection, name: str) -> str:
    """A new token (returned, shown once); the old token and its sessions are dead. Re-enables a revoked user."""
    token = secrets.token_urlsafe(24)
    with db.write(conn):
        user = get_user(conn, name)
        conn.execute("UPDATE users SET status = 'active', token_hash = ? WHERE id = ?", (token_hash(token), user.id))
        n = _end_access(conn, user.id)
        db.audit(conn, "rotate", name, sessions=n, was=user.status)
    return token


def remove_user(conn: sqlite3.Connection, name: str) -> int:
    """Remove the account. Labels are history and stay (export keeps them); returns how many there are."""
    with db.write(conn):
        user = get_user(conn, name)
        labels = conn.execute("SELECT COUNT(*) FROM latest WHERE user_id = ? AND value IN ('good', 'bad')",
                              (user.id,)).fetchone()[0]
        conn.execute("UPDATE users SET status = 'removed', token_hash = ? WHERE id = ?",
                     (token_hash(secrets.token_urlsafe(24)), user.id))
        n = _end_access(conn, user.id)
        db.audit(conn, "remove", name, sessions=n, labels_kept=labels)
    return labels


def set_role(conn: sqlite3.Connection, name: str, role: str) -> None:
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    with db.write(conn):
        user = get_user(conn, name)
        conn.execute("UPDATE users SET is_admin = ? WHERE id = ?", (int(role == "admin"), user.id))
        db.audit(conn, "set-role", name, role=role, was=user.role)


def user_by_token(conn: sqlite3.Connection, token: str) -> User | None:
    row = conn.execute("SELECT id, name, is_admin FROM users WHERE token_hash = ? AND status = 'active'",
                       (token_hash(token),)).fetchone()
    return User(row["id"], row["name"], bool(row["is_admin"])) if row else None


def create_session(conn: sqlite3.Connection, user: User, seconds: int = SESSION_SECONDS) -> tuple[str, str]:
    """Returns (session id for the cookie, CSRF token for the page)."""
    sid, csrf = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    now = time.time()
    with db.write(conn):
        conn.execute("DELETE FROM sessions WHERE expires < ?", (now,))
        conn.execute("INSERT INTO sessions (id_hash, user_id, csrf, created, expires) VALUES (?, ?, ?, ?, ?)",
                     (token_hash(sid), user.id, csrf, now, now + seconds))
        conn.execute("DELETE FROM sessions WHERE user_id = ? AND rowid NOT IN (SELECT rowid FROM sessions"
                     " WHERE user_id = ? ORDER BY created DESC, rowid DESC LIMIT ?)", (user.id, user.id, MAX_SESSIONS))
    return sid, csrf


def session_by_id(conn: sqlite3.Connection, sid: str) -> Session | None:
    row = conn.execute(
        "SELECT u.id, u.name, u.is_admin, s.csrf FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.id_hash = ? AND s.expires > ? AND u.status = 'active'", (token_hash(sid), time.time())).fetchone()
    if row is None:
        return None
    return Session(User(row["id"], row["name"], bool(row["is_admin"])), row["csrf"])


def end_session(conn: sqlite3.Connection, sid: str) -> None:
    with db.write(conn):
        conn.execute("DELETE FROM sessions WHERE id_hash = ?", (token_hash(sid),))
