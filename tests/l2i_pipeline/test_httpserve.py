"""The loopback server serves files and canned responses on 127.0.0.1, and stops cleanly."""
from __future__ import annotations

import http.client
import urllib.error
import urllib.request

import pytest

from l2i_pipeline.demo.httpserve import LoopbackServer, Response


def _get(server: LoopbackServer, path: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)  # does not follow redirects
    conn.request("GET", path)
    return conn.getresponse()


def test_serves_directory_on_loopback_ephemeral_port(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8jpeg bytes")
    with LoopbackServer(tmp_path) as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.port > 0
        with urllib.request.urlopen(server.url("a.jpg"), timeout=5) as r:
            assert r.read() == b"\xff\xd8jpeg bytes"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(server.url("missing.jpg"), timeout=5)
        assert e.value.code == 404
        assert server.requests == ["/a.jpg", "/missing.jpg"]


def test_canned_routes_redirect_lying_content_type_and_empty_body(tmp_path):
    with LoopbackServer(tmp_path, routes={"/gone": Response(410, b"gone")}) as server:
        hop = server.add_redirect("hop", "http://10.0.0.1/x.jpg")
        assert hop == server.url("hop")
        server.add_body("page.jpg", b"<html>not an image</html>", "image/jpeg")
        server.add_body("empty.jpg", b"")

        r = _get(server, "/hop")
        assert (r.status, r.getheader("Location")) == (302, "http://10.0.0.1/x.jpg")
        r = _get(server, "/page.jpg")
        assert (r.status, r.getheader("Content-Type"), r.read()) == (200, "image/jpeg", b"<html>not an image</html>")
        r = _get(server, "/empty.jpg?x=1")  # the query string is ignored when matching routes
        assert (r.status, r.getheader("Content-Length"), r.read()) == (200, "0", b"")
        assert _get(server, "/gone").status == 410


def test_routes_win_over_files_and_server_without_directory(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"file")
    with LoopbackServer(tmp_path) as server:
        server.add_body("x.jpg", b"route")
        assert _get(server, "/x.jpg").read() == b"route"
    with LoopbackServer() as server:
        assert _get(server, "/x.jpg").status == 404


def test_stop_closes_the_port(tmp_path):
    server = LoopbackServer(tmp_path).start()
    port = server.port
    server.stop()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()
    with pytest.raises(RuntimeError):
        _ = server.port


def test_demo_rerun_serves_on_the_same_port_so_inputs_are_byte_identical(tmp_path):
    """Issue 17: `make demo` twice; the loopback port is part of each URL, so a rerun reuses it."""
    from l2i_pipeline.commands.demo import build_input, demo_server

    (tmp_path / "www").mkdir()
    with demo_server(tmp_path) as first:
        before, port = build_input(tmp_path, first.base_url).read_bytes(), first.port
    with demo_server(tmp_path) as second:
        assert second.port == port
        assert build_input(tmp_path, second.base_url).read_bytes() == before
