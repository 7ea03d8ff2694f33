"""The labeling web app (FastAPI): login, one page per task, the admin stats page, and a small JSON API.

Security model: only known Host names are answered and bodies over a few KB are refused unread (limits.py);
every route but /login, /api/login and /static needs a session: the cookie plus the session token that only the
login response carries (auth.py), so a server on another local port that receives the cookie gets nothing with
it. State-changing requests must also be JSON and same-origin; that includes taking samples (it creates leases).
Images are addressed by sample key and looked up in the pool, so no file path ever comes from a request.
Untrusted text (captions, keys) is rendered by the pages with textContent.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from annotations import db, limits, queue, render, users
from annotations.auth import (
    COOKIE,
    AdminSession,
    AnySession,
    Conn,
    ImageSession,
    WriteSession,
    cookie_session,
    image_sig,
    same_origin_json,
)
from annotations.pool import sample_files
from annotations.stats import team_stats

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
Task = Literal["mask", "inpaint"]
View = Literal["image", "mask", "cutout", "bg", "bg_outline", "image_outline"]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self';"
                               " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


HSTS_SECONDS = 365 * 24 * 3600


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200)


class NextBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(default=5, ge=1, le=queue.MAX_HELD)


OpId = Field(default=None, min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
             description="the page's id for this request: resending it is acknowledged, not repeated")


class LabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=1000)
    label: Literal["good", "bad", "skip"]
    id: str | None = OpId


class UndoBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = OpId


# ------------------------------------------------------------------ app

def create_app(db_path: str | Path, settings: queue.Settings | None = None,
               allowed_hosts: Iterable[str] | None = None, max_body: int = limits.MAX_BODY,
               public_url: str | None = None, login_limiter: limits.FailureLimiter | None = None) -> FastAPI:
    """`allowed_hosts`: Host names answered (default: localhost names only; see limits.allowed_hosts).
    `public_url`: the base URL annotators open (--url). Its origin is accepted as the pages' own even when a
    proxy rewrites Host; when it is https the session cookie is Secure and responses carry HSTS."""
    db.connect(db_path).close()  # fail early and clearly when the database is missing
    app = FastAPI(title="l2i annotate", docs_url=None, redoc_url=None, openapi_url=None, max_body_size=max_body)
    app.state.db_path = str(db_path)
    app.state.settings = settings or queue.Settings()
    app.state.public_origins = {limits.public_origin(public_url)} if public_url else set()
    app.state.login_limiter = login_limiter or limits.FailureLimiter()
    app.state.https = any(o.startswith("https://") for o in app.state.public_origins)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    headers = SECURITY_HEADERS | ({"Strict-Transport-Security": f"max-age={HSTS_SECONDS}"} if app.state.https else {})

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in headers.items():
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


def _item(s: users.Session, item: queue.Item) -> dict:
    return item.to_json() | {"sig": image_sig(s, item.key)}


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers={"Cache-Control": "no-store"})


def _pages(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def home(request: Request, conn: Conn):
        return RedirectResponse("/annotate/mask" if cookie_session(request, conn) else "/login", 303)

    @app.get("/login", include_in_schema=False)
    def login_page():
        return _page("login.html")

    @app.get("/annotate/{task}", include_in_schema=False)
    def task_page(task: Task, request: Request, conn: Conn):
        if cookie_session(request, conn) is None:
            return RedirectResponse("/login", 303)
        return _page("label.html")

    @app.get("/stats", include_in_schema=False)
    def stats_page(request: Request, conn: Conn):
        s = cookie_session(request, conn)
        if s is None:
            return RedirectResponse("/login", 303)
        if not s.user.is_admin:
            raise HTTPException(403, "admins only")
        return _page("stats.html")


def _api(app: FastAPI) -> None:
    @app.post("/api/login")
    def login(body: LoginBody, request: Request, conn: Conn):
        same_origin_json(request)
        client, limiter = request.client.host if request.client else "?", app.state.login_limiter
        wait = limiter.retry_after(client)
        if wait > 0:
            log.warning("login from %s refused: too many failed logins (%d in %.0f s)", client, limiter.limit,
                        limiter.window_s)
            return JSONResponse({"detail": f"too many failed logins; try again in {wait:.0f} s"}, status_code=429,
                                headers={"Retry-After": str(int(wait) + 1)})
        user = users.user_by_token(conn, body.token)
        if user is None:
            limiter.failed(client)
            log.warning("failed login from %s: unknown token", client)
            raise HTTPException(401, "unknown token")
        sid, csrf = users.create_session(conn, user)
        response = JSONResponse({"name": user.name, "is_admin": user.is_admin, "csrf": csrf})
        response.set_cookie(COOKIE, sid, max_age=users.SESSION_SECONDS, path="/", httponly=True,
                            samesite="strict", secure=app.state.https or request.url.scheme == "https")
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
        return {"name": s.user.name, "is_admin": s.user.is_admin, "tasks": list(db.TASKS)}

    @app.post("/api/tasks/{task}/next")
    def next_items(task: Task, body: NextBody, s: WriteSession, conn: Conn):
        st = app.state.settings
        items = queue.next_items(conn, s.user.id, task, body.n, st)
        return {"items": [_item(s, i) for i in items], "progress": queue.progress(conn, s.user.id, task, st).to_json()}

    @app.post("/api/tasks/{task}/label")
    def label(task: Task, body: LabelBody, s: WriteSession,
              conn: Conn):
        queue.record(conn, s.user.id, task, body.key, body.label, app.state.settings, op=body.id)
        return {"ok": True, "progress": queue.progress(conn, s.user.id, task, app.state.settings).to_json()}

    @app.post("/api/tasks/{task}/undo")
    def undo(task: Task, body: UndoBody, s: WriteSession, conn: Conn):
        u = queue.undo(conn, s.user.id, task, app.state.settings, op=body.id)
        out = {"item": _item(s, u.item) if u.served else None,
               "progress": queue.progress(conn, s.user.id, task, app.state.settings).to_json()}
        if not u.served:
            out |= {"gone": u.item.key, "message": f"{u.item.key} went to another annotator after you skipped it;"
                                                   " undo again for the one before"}
        return out

    @app.get("/api/stats")
    def stats(s: AdminSession, conn: Conn):
        st = team_stats(conn, app.state.settings.overlap)
        for t in st["tasks"]:
            for d in t["disagreements"]:
                d["sig"] = image_sig(s, d["key"])
        return st

    @app.get("/img/{view}")
    def image(view: View, key: Annotated[str, Query(min_length=1, max_length=1000)], s: ImageSession, conn: Conn):
        files = sample_files(conn, key)
        if files is None:
            raise HTTPException(404, "no such sample in the pool")
        try:
            data = render.render(files.read, view)
        except (OSError, ValueError, KeyError) as e:
            log.error("cannot render %s of sample %s: %s", view, key, e)
            raise HTTPException(500, "this sample's data is unreadable on the server") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
