"""Shared-host guards against the real app: oversized bodies get 413 unread, unknown Host names get 400."""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
from fastapi.testclient import TestClient

from annotations.limits import MAX_BODY, allowed_hosts
from annotations.server import create_app


def raw_request(url: str, head: str, body: bytes = b"") -> bytes:
    """Send a hand-written request; return what the server answers within 5 s (it may close early)."""
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=5) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + body)
        try:
            return s.recv(65536)
        except TimeoutError:
            return b""


def test_declared_oversized_body_gets_413_before_it_is_sent(live_server):
    host = urlsplit(live_server.url).netloc
    # 100 MB declared, not one byte sent: the answer can only come from the headers
    reply = raw_request(live_server.url, f"POST /api/login HTTP/1.1\nHost: {host}\n"
                                         f"Content-Type: application/json\nContent-Length: 100000000\n\n")
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    for path in ("/api/tasks/mask/label", "/api/tasks/mask/next", "/api/logout", "/static/label.js"):
        reply = raw_request(live_server.url, f"POST {path} HTTP/1.1\nHost: {host}\nContent-Length: {MAX_BODY + 1}\n\n")
        assert reply.startswith(b"HTTP/1.1 413"), (path, reply[:200])  # before auth, routing or parsing


def test_chunked_body_is_cut_off_at_the_limit(live_server):
    host = urlsplit(live_server.url).netloc
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    # five 1 KB chunks of an endless body (no terminating chunk): the answer comes once the limit is passed
    reply = raw_request(live_server.url, f"POST /api/login HTTP/1.1\nHost: {host}\nContent-Type: application/json\n"
                                         f"Transfer-Encoding: chunked\n\n", chunk * 5)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    with httpx.Client(base_url=live_server.url, timeout=10) as c:  # and the server is still up
        assert c.post("/api/login", json={"token": "nope"}).status_code == 401


def test_small_bodies_still_work_and_the_limit_is_a_few_kb(make_client, env):
    c = make_client("ann1")
    key = c.post("/api/tasks/mask/next", json={"n": 1}).json()["items"][0]["key"]
    assert c.post("/api/tasks/mask/label", json={"key": key, "label": "good", "pad": "x" * (MAX_BODY + 10)}
                  ).status_code == 413
    assert c.post("/api/tasks/mask/label", json={"key": key, "label": "good"}).status_code == 200
    assert 1024 < MAX_BODY <= 16 * 1024


def test_unknown_host_names_get_400(live_server):
    port = urlsplit(live_server.url).port
    with httpx.Client(timeout=10) as c:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
            assert c.get(f"{live_server.url}/login", headers={"Host": host}).status_code == 200, host
        for host in (f"evil.example:{port}", "rebind.attacker.test", "127.0.0.1.evil.example", ""):
            r = c.get(f"{live_server.url}/login", headers={"Host": host})
            assert r.status_code == 400, host
        r = c.post(f"{live_server.url}/api/login", json={"token": live_server.env.tokens["ann1"]},
                   headers={"Host": f"evil.example:{port}"})
        assert r.status_code == 400 and "set-cookie" not in r.headers


def test_public_url_and_extra_hosts_are_answered(env):
    hosts = allowed_hosts("0.0.0.0", ["https://Lab.Example.org:8443/annotate", "10.1.2.3"])
    assert hosts == sorted(["127.0.0.1", "localhost", "[::1]", "lab.example.org", "10.1.2.3"])
    assert "0.0.0.0" not in hosts and "[::1]" in allowed_hosts("::1")
    app = create_app(env.db_path, allowed_hosts=hosts)
    with TestClient(app, base_url="https://lab.example.org:8443") as c:
        assert c.get("/login").status_code == 200
        assert c.post("/api/login", json={"token": env.tokens["ann1"]}).status_code == 200
    with TestClient(app, base_url="http://other.example.org") as c:
        assert c.get("/login").status_code == 400
