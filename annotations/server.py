"""The labeling web app (FastAPI): login, one page per task, the admin stats page, and a small JSON API.

Security model: only known Host names are answered and bodies over a few KB are refused unread (limits.py);
every route but /login, /api/login and /static needs a session cookie (HttpOnly,
SameSite=Strict). State-changing requests must be JSON, same-origin (Origin / Sec-Fetch-Site checked) and carry
the session's CSRF token in X-CSRF-Token; that includes taking samples (it creates leases), so a page on another
local port cannot hoard an annotator's samples. Images are addressed by sample key and looked up in the pool, so no
file path ever comes from a request. Untrusted text (captions, keys) is rendered by the pages with textContent.
"""
from __future__ import annotations

import hmac
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from annotations import db, limits, queue, render, users
from annotations.pool import sample_files
from annotations.stats import team_stats

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
COOKIE = "l2i_session"
Task = Literal["mask", "inpaint"]
View = Literal["image", "mask", "cutout", "bg", "bg_outline", "image_outline"]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self';"
                               " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200)


class NextBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(default=5, ge=1, le=queue.MAX_HELD)


class LabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=1000)
    label: Literal["good", "bad", "skip"]


# ------------------------------------------------------------------ dependencies

def get_conn(request: Request) -> Iterator[sqlite3.Connection]:
    conn = db.connect(request.app.state.db_path)
    try:
        yield conn
    finally:
        conn.close()


def _session_or_none(request: Request, conn: sqlite3.Connection) -> users.Session | None:
    sid = request.cookies.get(COOKIE)
    if not sid or len(sid) > 200:
        return None
    return users.session_by_id(conn, sid)


def get_session(request: Request, conn: Annotated[sqlite3.Connection, Depends(get_conn)]) -> users.Session:
    s = _session_or_none(request, conn)
    if s is None:
        raise HTTPException(401, "not logged in")
    return s


def same_origin_json(request: Request) -> None:
    """Refuse cross-site and non-JSON writes: a cross-site form cannot send JSON without a CORS preflight."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "cross-origin request refused")
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        raise HTTPException(403, "cross-site request refused")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "send JSON (Content-Type: application/json)")


def write_session(request: Request, s: Annotated[users.Session, Depends(get_session)]) -> users.Session:
    same_origin_json(request)
    sent = request.headers.get("x-csrf-token", "").encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(sent, s.csrf.encode()):
        raise HTTPException(403, "missing or wrong CSRF token")
    return s


def admin_session(s: Annotated[users.Session, Depends(get_session)]) -> users.Session:
    if not s.user.is_admin:
        raise HTTPException(403, "admins only")
    return s


Conn = Annotated[sqlite3.Connection, Depends(get_conn)]
AnySession = Annotated[users.Session, Depends(get_session)]
WriteSession = Annotated[users.Session, Depends(write_session)]
AdminSession = Annotated[users.Session, Depends(admin_session)]


# ------------------------------------------------------------------ app

def create_app(db_path: str | Path, settings: queue.Settings | None = None,
               allowed_hosts: Iterable[str] | None = None, max_body: int = limits.MAX_BODY) -> FastAPI:
    """`allowed_hosts`: Host names answered (default: localhost names only; see limits.allowed_hosts)."""
    db.connect(db_path).close()  # fail early and clearly when the database is missing
    app = FastAPI(title="l2i annotate", docs_url=None, redoc_url=None, openapi_url=None, max_body_size=max_body)
    app.state.db_path = str(db_path)
    app.state.settings = settings or queue.Settings()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(queue.QueueError)
    async def queue_error(request: Request, exc: queue.QueueError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(UnicodeError)
    async def bad_text(request: Request, exc: UnicodeError):
        return JSONResponse({"detail": "malformed text in request"}, status_code=400)

    _pages(app)
    _api(app)
    # added last, so it runs first: a request to an unknown Host name never reaches a route
    hosts = list(allowed_hosts) if allowed_hosts is not None else limits.allowed_hosts("127.0.0.1")
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False)
    return app


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers={"Cache-Control": "no-store"})


def _pages(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def home(request: Request, conn: Conn):
        return RedirectResponse("/annotate/mask" if _session_or_none(request, conn) else "/login", 303)

    @app.get("/login", include_in_schema=False)
    def login_page():
        return _page("login.html")

    @app.get("/annotate/{task}", include_in_schema=False)
    def task_page(task: Task, request: Request, conn: Conn):
        if _session_or_none(request, conn) is None:
            return RedirectResponse("/login", 303)
        return _page("label.html")

    @app.get("/stats", include_in_schema=False)
    def stats_page(request: Request, conn: Conn):
        s = _session_or_none(request, conn)
        if s is None:
            return RedirectResponse("/login", 303)
        if not s.user.is_admin:
            raise HTTPException(403, "admins only")
        return _page("stats.html")


def _api(app: FastAPI) -> None:
    @app.post("/api/login")
    def login(body: LoginBody, request: Request, conn: Conn):
        same_origin_json(request)
        user = users.user_by_token(conn, body.token)
        if user is None:
            raise HTTPException(401, "unknown token")
        sid, csrf = users.create_session(conn, user)
        response = JSONResponse({"name": user.name, "is_admin": user.is_admin, "csrf": csrf})
        response.set_cookie(COOKIE, sid, max_age=users.SESSION_SECONDS, path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        log.info("login: %s", user.name)
        return response

    @app.post("/api/logout")
    def logout(request: Request, s: WriteSession,
               conn: Conn):
        users.end_session(conn, request.cookies[COOKIE])
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/api/me")
    def me(s: AnySession):
        return {"name": s.user.name, "is_admin": s.user.is_admin, "csrf": s.csrf, "tasks": list(db.TASKS)}

    @app.post("/api/tasks/{task}/next")
    def next_items(task: Task, body: NextBody, s: WriteSession, conn: Conn):
        st = app.state.settings
        items = queue.next_items(conn, s.user.id, task, body.n, st)
        return {"items": [i.to_json() for i in items], "progress": queue.progress(conn, s.user.id, task, st).to_json()}

    @app.post("/api/tasks/{task}/label")
    def label(task: Task, body: LabelBody, s: WriteSession,
              conn: Conn):
        queue.record(conn, s.user.id, task, body.key, body.label, app.state.settings)
        return {"ok": True, "progress": queue.progress(conn, s.user.id, task, app.state.settings).to_json()}

    @app.post("/api/tasks/{task}/undo")
    def undo(task: Task, s: WriteSession,
             conn: Conn):
        u = queue.undo(conn, s.user.id, task, app.state.settings)
        out = {"item": u.item.to_json() if u.served else None,
               "progress": queue.progress(conn, s.user.id, task, app.state.settings).to_json()}
        if not u.served:
            out |= {"gone": u.item.key, "message": f"{u.item.key} went to another annotator after you skipped it;"
                                                   " undo again for the one before"}
        return out

    @app.get("/api/stats")
    def stats(s: AdminSession, conn: Conn):
        return team_stats(conn, app.state.settings.overlap)

    @app.get("/img/{view}")
    def image(view: View, key: Annotated[str, Query(min_length=1, max_length=1000)], s: AnySession,
              conn: Conn):
        files = sample_files(conn, key)
        if files is None:
            raise HTTPException(404, "no such sample in the pool")
        try:
            data = render.render(files.read, view)
        except (OSError, ValueError, KeyError) as e:
            log.error("cannot render %s of sample %s: %s", view, key, e)
            raise HTTPException(500, "this sample's data is unreadable on the server") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
