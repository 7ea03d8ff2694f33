"""Behind a reverse proxy (issue 25 #13): `--url https://...` makes the cookie Secure and sends HSTS, and a proxy
that rewrites Host (nginx's default `proxy_set_header Host $proxy_host`) does not break login or writes."""
from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from annotations import limits
from annotations.queue import Settings
from annotations.server import create_app
from l2i_pipeline.cli import main

PUBLIC = "https://label.lab.org"


def proxied_client(env, public_url: str | None, base_url: str) -> TestClient:
    hosts = limits.allowed_hosts("127.0.0.1", [public_url or ""])
    app = create_app(env.db_path, Settings(overlap=0.0), allowed_hosts=hosts, public_url=public_url)
    return TestClient(app, base_url=base_url)


def test_a_proxy_that_rewrites_host_can_log_in_and_write(env, caplog):
    # nginx's default: the browser's Origin is the public https URL, Host is the upstream address, plain http
    with proxied_client(env, PUBLIC, "http://127.0.0.1:8700") as c:
        r = c.post("/api/login", json={"token": env.tokens["ann1"]}, headers={"Origin": PUBLIC})
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"].lower()
        assert "; secure" in cookie and "httponly" in cookie  # --url https alone makes it Secure
        assert r.headers["strict-transport-security"].startswith("max-age=")
        sid, token = r.cookies["l2i_session"], r.json()["csrf"]
        c.cookies.clear()  # httpx keeps Secure cookies off plain http: send it as the browser (over https) would
        auth = {"Cookie": f"l2i_session={sid}", "X-CSRF-Token": token, "Origin": PUBLIC}
        r = c.post("/api/tasks/mask/next", json={"n": 1}, headers=auth)
        assert r.status_code == 200 and len(r.json()["items"]) == 1
        key = r.json()["items"][0]["key"]
        assert c.post("/api/tasks/mask/label", json={"key": key, "label": "good"}, headers=auth).status_code == 200
        with caplog.at_level(logging.WARNING, logger="annotations"):
            evil = {**auth, "Origin": "https://evil.example"}
            assert c.post("/api/tasks/mask/next", json={"n": 1}, headers=evil).status_code == 403
            assert c.post("/api/login", json={"token": "wrong"}, headers={"Origin": PUBLIC}).status_code == 401
        logged = caplog.text
        assert "cross-origin request refused" in logged and "https://evil.example" in logged
        assert "failed login" in logged and "wrong" not in logged  # the reason, never the token


def test_https_at_the_app_and_plain_http_urls(env):
    with proxied_client(env, PUBLIC, "https://label.lab.org") as c:  # Host kept (proxy_set_header Host $host)
        r = c.post("/api/login", json={"token": env.tokens["ann2"]}, headers={"Origin": PUBLIC})
        assert r.status_code == 200 and "; secure" in r.headers["set-cookie"].lower()
        assert c.get("/login").headers["strict-transport-security"] == "max-age=31536000"
    with proxied_client(env, "http://label.lab.org:8080", "http://label.lab.org:8080") as c:
        r = c.post("/api/login", json={"token": env.tokens["ann2"]}, headers={"Origin": "http://label.lab.org:8080"})
        assert r.status_code == 200 and "secure" not in r.headers["set-cookie"].lower()
        assert "strict-transport-security" not in r.headers


@pytest.mark.parametrize("url", ["label.lab.org", "ftp://label.lab.org", "https://label.lab.org/annotate",
                                 "https://", "https://label.lab.org/?x=1"])
def test_serve_refuses_a_url_it_cannot_be_served_at(env, capsys, monkeypatch, url):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    rc = main(["annotate", "serve", "--db", str(env.db_path), "--url", url])
    err = capsys.readouterr().err
    assert rc == 2 and "--url" in err and err.count("\n") == 1, err


def test_serve_passes_the_public_url_to_the_app(env, monkeypatch):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    assert main(["annotate", "serve", "--db", str(env.db_path), "--url", "https://label.lab.org/"]) == 0
    assert started["app"].state.public_origins == {PUBLIC}
