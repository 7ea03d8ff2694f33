"""Who is asking: the session checks behind every route (FastAPI dependencies).

A session has two halves. The cookie (HttpOnly, SameSite=Strict) is sent by the browser; but cookies are not
separated by port, so a server on another port of the same host receives it too. The other half, the session
token, is handed out only in the login response; the page keeps it in localStorage, which is scoped to the
origin (scheme, host *and* port), and sends it as X-CSRF-Token with every API request. The cookie alone is
no session: API routes answer it 401 and images need a signature made with the token (`image_sig`). Writes
must also be JSON and same-origin (Origin / Sec-Fetch-Site), so a cross-site form or fetch is refused.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import sqlite3
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request

from annotations import db, limits, users
from l2i_pipeline.core.errors import ConfigError

log = logging.getLogger(__name__)

COOKIE = "l2i_session"
TOKEN_HEADER = "x-csrf-token"


def get_conn(request: Request) -> Iterator[sqlite3.Connection]:
    conn = db.connect(request.app.state.db_path)
    try:
        yield conn
    finally:
        conn.close()


def cookie_session(request: Request, conn: sqlite3.Connection) -> users.Session | None:
    """The cookie's session, for page routes only: they serve static HTML, which then needs the token."""
    sid = request.cookies.get(COOKIE)
    if not sid or len(sid) > 200:
        return None
    return users.session_by_id(conn, sid)


def _token_matches(request: Request, s: users.Session) -> bool:
    sent = request.headers.get(TOKEN_HEADER, "").encode("utf-8", "surrogatepass")
    return hmac.compare_digest(sent, s.csrf.encode())


def get_session(request: Request, conn: Annotated[sqlite3.Connection, Depends(get_conn)]) -> users.Session:
    """Cookie and session token both: what every API route needs."""
    s = cookie_session(request, conn)
    if s is None:
        raise HTTPException(401, "not logged in")
    if not _token_matches(request, s):
        log.warning("request %s %s from %s: session cookie without its token refused", request.method,
                    request.url.path, _client(request))
        raise HTTPException(401, "this page has no session token; log in again")
    return s


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def refuse(request: Request, status: int, reason: str) -> HTTPException:
    """An HTTPException whose reason is also logged, so a misconfigured proxy shows up in the server log."""
    log.warning("refused %s %s from %s (%d): %s%s", request.method, request.url.path, _client(request), status,
                reason, "" if request.app.state.public_origins else "; behind a proxy, pass its public URL as --url")
    return HTTPException(status, reason)


def _origin_ok(request: Request, origin: str) -> bool:
    """The page's own origin: the Host it reached us at, or the configured --url (a proxy may rewrite Host)."""
    if urlsplit(origin).netloc == request.headers.get("host"):
        return True
    try:
        return limits.public_origin(origin) in request.app.state.public_origins
    except ConfigError:
        return False


def same_origin_json(request: Request) -> None:
    """Refuse cross-site and non-JSON writes: a cross-site form cannot send JSON without a CORS preflight."""
    origin = request.headers.get("origin")
    if origin is not None and not _origin_ok(request, origin):
        raise refuse(request, 403, f"cross-origin request refused (Origin {origin[:100]!r}, Host "
                                   f"{request.headers.get('host', '')[:100]!r})")
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        raise refuse(request, 403, "cross-site request refused")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "send JSON (Content-Type: application/json)")


def write_session(request: Request, s: Annotated[users.Session, Depends(get_session)]) -> users.Session:
    same_origin_json(request)
    return s


def admin_session(s: Annotated[users.Session, Depends(get_session)]) -> users.Session:
    if not s.user.is_admin:
        raise HTTPException(403, "admins only")
    return s


def image_sig(s: users.Session, key: str) -> str:
    """The signature an image URL carries: only a holder of the session token can make it."""
    return hmac.new(s.csrf.encode(), key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


def image_session(request: Request, conn: Annotated[sqlite3.Connection, Depends(get_conn)]) -> users.Session:
    """<img> cannot send headers: the cookie plus `sig` = image_sig(session, key) in the query."""
    s = cookie_session(request, conn)
    if s is None:
        raise HTTPException(401, "not logged in")
    sig = request.query_params.get("sig", "").encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(sig, image_sig(s, request.query_params.get("key", "")).encode()):
        raise HTTPException(403, "image URL not signed for this session")
    return s


Conn = Annotated[sqlite3.Connection, Depends(get_conn)]
AnySession = Annotated[users.Session, Depends(get_session)]
WriteSession = Annotated[users.Session, Depends(write_session)]
AdminSession = Annotated[users.Session, Depends(admin_session)]
ImageSession = Annotated[users.Session, Depends(image_session)]
