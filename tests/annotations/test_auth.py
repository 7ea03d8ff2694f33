"""Accounts, sessions and the request-level security rules: 401/403/4xx, never a 500."""
from __future__ import annotations

import sqlite3
import time

import pytest

from annotations import db
from annotations.users import add_user, token_hash


def test_only_token_hashes_are_stored(env):
    conn = db.connect(env.db_path)
    stored = [r[0] for r in conn.execute("SELECT token_hash FROM users")]
    assert token_hash(env.tokens["ann1"]) in stored
    assert not any(t in stored for t in env.tokens.values())
    raw = env.db_path.read_bytes() + (env.db_path.with_name(env.db_path.name + "-wal").read_bytes()
                                      if env.db_path.with_name(env.db_path.name + "-wal").exists() else b"")
    assert not any(t.encode() in raw for t in env.tokens.values())
    with pytest.raises(ValueError, match="already exists"):
        add_user(conn, "ann1")
    with pytest.raises(ValueError):
        add_user(conn, " spaced ")


def test_every_route_but_login_and_static_needs_a_session(make_client):
    c = make_client()
    assert c.get("/login").status_code == 200
    assert c.get("/static/label.js").status_code == 200
    for path in ("/", "/annotate/mask", "/annotate/inpaint", "/stats"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    for path in ("/api/me", "/api/stats", "/img/image?key=000000000"):
        assert c.get(path).status_code == 401, path
    assert c.post("/api/tasks/mask/next", json={"n": 1}).status_code == 401
    assert c.post("/api/tasks/mask/label", json={"key": "000000000", "label": "good"}).status_code == 401
    assert c.post("/api/tasks/mask/undo", json={}).status_code == 401


def test_login_sets_strict_httponly_cookie_and_bad_tokens_get_401(make_client, env):
    c = make_client()
    assert c.post("/api/login", json={"token": "nope"}).status_code == 401
    assert c.post("/api/login", json={"token": ""}).status_code == 422
    assert c.post("/api/login", json={"token": "x" * 1000}).status_code == 422
    assert c.post("/api/login", json={"token": "x" * 5000}).status_code == 413  # over the body limit
    lone_surrogate = b'{"token": "\\ud800"}'
    json_header = {"Content-Type": "application/json"}
    assert c.post("/api/login", content=lone_surrogate, headers=json_header).status_code in (400, 401)
    assert c.post("/api/login", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 422
    assert c.post("/api/login", json=["a"]).status_code == 422
    r = c.post("/api/login", json={"token": env.tokens["ann1"]})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert c.get("/api/me", headers={"X-CSRF-Token": r.json()["csrf"]}).json()["name"] == "ann1"
    c.cookies.clear()
    c.cookies.set("l2i_session", "forged")
    assert c.get("/api/me").status_code == 401


def test_writes_need_csrf_token_json_and_same_origin(make_client):
    c = make_client("ann1")
    key = c.post("/api/tasks/mask/next", json={"n": 1}).json()["items"][0]["key"]
    csrf = c.headers.pop("X-CSRF-Token")
    body = {"key": key, "label": "good"}
    assert c.post("/api/tasks/mask/label", json=body).status_code == 401  # the cookie alone is no session
    assert c.post("/api/tasks/mask/label", json=body, headers={"X-CSRF-Token": "wrong"}).status_code == 401
    assert c.post("/api/tasks/mask/label", json=body, headers={"X-CSRF-Token": "é".encode()}).status_code == 401
    ok = {"X-CSRF-Token": csrf}
    evil = {**ok, "Origin": "http://evil.example"}
    assert c.post("/api/tasks/mask/label", json=body, headers=evil).status_code == 403
    assert c.post("/api/tasks/mask/label", json=body, headers={**ok, "Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert c.post("/api/tasks/mask/label", data=body, headers=ok).status_code == 415  # a form post
    assert c.post("/api/login", json={"token": "x"}, headers={"Origin": "http://evil.example"}).status_code == 403
    r = c.post("/api/tasks/mask/label", json=body, headers={**ok, "Origin": "http://testserver"})
    assert r.status_code == 200
    conn = db.connect(c.app.state.db_path)
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1  # only the one accepted write


def test_malformed_requests_get_4xx_never_500(make_client):
    c = make_client("ann1")
    cases = [
        ("post", "/api/tasks/nope/next", {}), ("post", "/api/tasks/mask/next", {"n": 0}),
        ("post", "/api/tasks/mask/next", {"n": "abc"}), ("post", "/api/tasks/mask/next", {"n": 100000}),
        ("post", "/api/tasks/mask/next", {"n": 1, "extra": 1}), ("get", "/api/tasks/mask/next", None),
        ("get", "/img/image", None), ("get", "/img/image?key=", None), ("get", "/img/../../etc/passwd?key=1", None),
        ("get", "/img/secret?key=000000000", None), ("get", "/img/image?key=../../etc/passwd", None),
        ("get", "/img/image?key=%00", None), ("get", "/img/image?key=%ED%A0%80", None),
        ("get", "/annotate/other", None),
        ("post", "/api/tasks/mask/label", {"key": "no-such-key", "label": "good"}),
        ("post", "/api/tasks/mask/label", {"key": "000000000", "label": "great"}),
        ("post", "/api/tasks/mask/label", b'{"key": "\\ud800", "label": "good"}'),
        ("post", "/api/tasks/mask/label", {"key": 5, "label": "good"}),
        ("post", "/api/tasks/mask/label", {"label": "good"}),
        ("post", "/api/tasks/mask/label", {"key": "000000000", "label": "good", "extra": 1}),
        ("post", "/api/tasks/mask/label", "just a string"),
        ("post", "/api/tasks/inpaint/undo", {}),  # nothing to undo yet
    ]
    for method, path, body in cases:
        if method == "get":
            r = c.get(path)
        elif isinstance(body, bytes):
            r = c.post(path, content=body, headers={"Content-Type": "application/json"})
        else:
            r = c.post(path, json=body)
        assert 400 <= r.status_code < 500, (path, body, r.status_code, r.text)


def test_annotators_cannot_see_stats(make_client):
    assert make_client("ann1").get("/api/stats").status_code == 403
    assert make_client("ann1").get("/stats").status_code == 403
    assert make_client("boss").get("/api/stats").status_code == 200


def test_security_headers_and_logout(make_client):
    c = make_client("ann2")
    r = c.get("/annotate/mask")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert c.post("/api/logout", json={}).status_code == 200
    assert c.get("/api/me").status_code == 401


def test_events_are_append_only(env):
    conn = db.connect(env.db_path)
    with db.write(conn):
        conn.execute("INSERT INTO events (user_id, sample_id, task, value, t) VALUES (1, 1, 'mask', 'good', 0)")
    for sql in ("UPDATE events SET value = 'bad'", "DELETE FROM events"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(sql)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_session_cookie_alone_is_no_session(make_client, env):
    """Issue 25 #12: a server on another local port receives the cookie (cookies ignore ports); with it alone a
    script can neither read the CSRF token nor take samples, see images or stats, nor save a label."""
    owner = make_client("boss")
    key = owner.post("/api/tasks/mask/next", json={"n": 1}).json()["items"][0]["key"]
    thief = make_client()
    thief.cookies.set("l2i_session", owner.cookies["l2i_session"])
    r = thief.get("/api/me")
    assert r.status_code == 401 and "csrf" not in r.text.lower()
    assert thief.post("/api/tasks/mask/next", json={"n": 20}).status_code == 401
    assert thief.post("/api/tasks/mask/label", json={"key": key, "label": "good"}).status_code == 401
    assert thief.post("/api/tasks/mask/undo", json={}).status_code == 401
    assert thief.get("/api/stats").status_code == 401
    assert thief.get(f"/img/image?key={key}").status_code == 403
    assert thief.get(f"/img/image?key={key}&sig=0123").status_code == 403
    assert thief.get("/annotate/mask").status_code == 200  # the static page, which then asks for the token
    conn = db.connect(env.db_path)
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 1  # only the owner's
    # the owner, holding the token the login response gave the page, still works; /api/me never repeats it
    me = owner.get("/api/me")
    assert me.status_code == 200 and "csrf" not in me.json()
    item = owner.post("/api/tasks/mask/next", json={"n": 1}).json()["items"][0]
    assert owner.get(f"/img/image?key={key}&sig={item['sig']}").status_code == 200


def test_a_user_keeps_at_most_the_newest_sessions(make_client, env):
    """Issue 25 #14: old sessions no longer pile up: each login ends the oldest beyond MAX_SESSIONS."""
    from annotations.users import MAX_SESSIONS

    clients = [make_client("ann1") for _ in range(MAX_SESSIONS + 2)]
    alive = [c.get("/api/me").status_code for c in clients]
    assert alive == [401, 401] + [200] * MAX_SESSIONS
    conn = db.connect(env.db_path)
    assert conn.execute("SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.name = 'ann1'"
                        ).fetchone()[0] == MAX_SESSIONS
    assert make_client("ann2").get("/api/me").status_code == 200  # other users' sessions are their own
    assert all(c.get("/api/me").status_code == 200 for c in clients[2:])


def test_failed_logins_are_rate_limited_per_address_and_logged(env, caplog):
    """Issue 25 #14: after LOGIN_FAILURES failures an address gets 429 (with Retry-After), even with a good token."""
    import logging

    from fastapi.testclient import TestClient

    from annotations import limits
    from annotations.server import create_app

    app = create_app(env.db_path, allowed_hosts=["testserver"])
    with TestClient(app, client=("10.0.0.1", 5000)) as guesser, TestClient(app, client=("10.0.0.2", 5000)) as other:
        with caplog.at_level(logging.WARNING, logger="annotations"):
            for _ in range(limits.LOGIN_FAILURES):
                assert guesser.post("/api/login", json={"token": "guess"}).status_code == 401
            r = guesser.post("/api/login", json={"token": env.tokens["ann1"]})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "too many" in r.json()["detail"]
        assert "failed login from 10.0.0.1" in caplog.text and "too many failed logins" in caplog.text
        assert other.post("/api/login", json={"token": env.tokens["ann1"]}).status_code == 200
    limiter = limits.FailureLimiter(limit=2, window_s=0.05)
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after("a") > 0 and limiter.retry_after("b") == 0
    time.sleep(0.06)
    assert limiter.retry_after("a") == 0  # the window slides
