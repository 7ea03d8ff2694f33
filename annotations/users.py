"""Annotator accounts and browser sessions.

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

SESSION_SECONDS = 7 * 24 * 3600


@dataclass
class User:
    id: int
    name: str
    is_admin: bool


@dataclass
class Session:
    user: User
    csrf: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def valid_name(name: str) -> bool:
    return 0 < len(name) <= 64 and name.isprintable() and name.strip() == name


def add_user(conn: sqlite3.Connection, name: str, is_admin: bool = False) -> str:
    """Create a user; returns the token, which is shown once and never stored."""
    if not valid_name(name):
        raise ValueError(f"bad user name {name!r}: 1-64 printable characters, no surrounding spaces")
    token = secrets.token_urlsafe(24)
    try:
        with db.write(conn):
            conn.execute("INSERT INTO users (name, is_admin, token_hash, created) VALUES (?, ?, ?, ?)",
                         (name, int(is_admin), token_hash(token), time.time()))
    except sqlite3.IntegrityError:
        raise ValueError(f"user {name!r} already exists") from None
    return token


def list_users(conn: sqlite3.Connection) -> list[User]:
    return [User(r["id"], r["name"], bool(r["is_admin"]))
            for r in conn.execute("SELECT id, name, is_admin FROM users ORDER BY name")]


def user_by_token(conn: sqlite3.Connection, token: str) -> User | None:
    row = conn.execute("SELECT id, name, is_admin FROM users WHERE token_hash = ?", (token_hash(token),)).fetchone()
    return User(row["id"], row["name"], bool(row["is_admin"])) if row else None


def create_session(conn: sqlite3.Connection, user: User, seconds: int = SESSION_SECONDS) -> tuple[str, str]:
    """Returns (session id for the cookie, CSRF token for the page)."""
    sid, csrf = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    now = time.time()
    with db.write(conn):
        conn.execute("DELETE FROM sessions WHERE expires < ?", (now,))
        conn.execute("INSERT INTO sessions (id_hash, user_id, csrf, created, expires) VALUES (?, ?, ?, ?, ?)",
                     (token_hash(sid), user.id, csrf, now, now + seconds))
    return sid, csrf


def session_by_id(conn: sqlite3.Connection, sid: str) -> Session | None:
    row = conn.execute(
        "SELECT u.id, u.name, u.is_admin, s.csrf FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.id_hash = ? AND s.expires > ?", (token_hash(sid), time.time())).fetchone()
    if row is None:
        return None
    return Session(User(row["id"], row["name"], bool(row["is_admin"])), row["csrf"])


def end_session(conn: sqlite3.Connection, sid: str) -> None:
    with db.write(conn):
        conn.execute("DELETE FROM sessions WHERE id_hash = ?", (token_hash(sid),))
