"""A loopback HTTP server for the demo and tests: real downloads without the internet.

Serves a directory on 127.0.0.1 at an ephemeral (or a given) port, plus canned responses (redirects, lying
content types, empty bodies, error codes) for the failure paths of `l2i download`.

    with LoopbackServer(photo_dir) as server:
        server.add_redirect("/hop", "http://10.0.0.1/x.jpg")
        urls = [server.url(name) for name in names]
"""
from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Response:
    """A canned response for one path."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        canned = self.server.routes.get(self.path.split("?")[0])
        if canned is None:
            super().do_GET()
            return
        self.send_response(canned.status)
        for name, value in canned.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(canned.body)))
        self.end_headers()
        self.wfile.write(canned.body)

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Response]
    requests: list[str]


class LoopbackServer:
    """Threaded static server on 127.0.0.1:<ephemeral port>; use as a context manager.

    `directory` (optional) is served as files; `routes` maps exact paths to `Response`s and wins over
    files. `requests` lists every requested path, so tests can check what was (not) fetched.
    """

    def __init__(self, directory: str | Path | None = None, routes: dict[str, Response] | None = None,
                 port: int = 0):
        self.directory = Path(directory) if directory is not None else None
        self.wanted_port = port  # 0: an ephemeral one
        self.routes: dict[str, Response] = dict(routes or {})
        self.requests: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LoopbackServer:
        handler = functools.partial(_Handler, directory=str(self.directory) if self.directory else "/nonexistent")
        server = _Server(("127.0.0.1", self.wanted_port), handler)
        server.routes, server.requests = self.routes, self.requests
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="loopback-http", daemon=True)
        self._thread.start()
        log.debug("serving %s at %s", self.directory, self.base_url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self):  # -> LoopbackServer
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """Absolute URL of `path` (a file name under the directory or a route)."""
        return f"{self.base_url}/{path.lstrip('/')}"

    # Canned responses; each returns the route's URL.

    def add(self, path: str, response: Response) -> str:
        self.routes["/" + path.lstrip("/")] = response
        return self.url(path) if self._server else path

    def add_redirect(self, path: str, location: str, status: int = 302) -> str:
        return self.add(path, Response(status, b"", {"Location": location}))

    def add_body(self, path: str, body: bytes, content_type: str = "image/jpeg", status: int = 200) -> str:
        """Serve `body` with a chosen content type, e.g. HTML claiming to be image/jpeg, or b""."""
        return self.add(path, Response(status, body, {"Content-Type": content_type}))
