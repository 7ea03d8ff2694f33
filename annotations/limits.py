"""Guards in front of the app for a shared host: request bodies capped before they are read, and only known
Host names answered (a DNS-rebinding page reaches the server under its own name and gets 400).

The largest valid body (a label: key up to 1000 characters) is about 1 KB, so MAX_BODY leaves room and no
more: a declared Content-Length above it gets 413 without one byte of the body being read, and a chunked
body is cut off with 413 as soon as it passes the limit.
"""
from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 4096
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
ANY_INTERFACE = ("0.0.0.0", "::", "")


class BodyLimit:
    """Pure ASGI middleware: 413 for bodies over `max_bytes`, decided before reading when the size is declared."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope["headers"] if k == b"content-length"]
        if declared:
            try:
                size = int(declared[0])
            except ValueError:
                await JSONResponse({"detail": "malformed Content-Length"}, 400)(scope, receive, send)
                return
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # an HTTPException, so FastAPI's body parsing passes it on as is
                    raise HTTPException(413, f"request body over {self.max_bytes} bytes")
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except HTTPException as e:
            if e.status_code != 413 or started:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": f"request body over {self.max_bytes} bytes"}, 413,
                                headers={"Connection": "close"})
        await response(scope, receive, send)


def host_name(url_or_host: str) -> str:
    """The Host-header form of a host or URL: lower case, no port, IPv6 literals in brackets."""
    text = url_or_host.strip()
    if text.count(":") > 1 and "[" not in text:  # a bare IPv6 literal such as ::1
        return f"[{text.lower()}]"
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    return f"[{host}]" if ":" in host else host.lower()


def allowed_hosts(bind_host: str, extra: Iterable[str] = ()) -> list[str]:
    """localhost names, the bound host (unless it is every interface) and the configured public names."""
    hosts = list(LOCAL_HOSTS)
    if bind_host not in ANY_INTERFACE:
        hosts.append(host_name(bind_host))
    hosts += [host_name(h) for h in extra if h]
    return sorted(set(h for h in hosts if h))
