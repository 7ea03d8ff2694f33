"""Limits for a shared host: how big a request body may be, which Host names the app answers, and how many
failed logins a client address may make.

The largest valid body (a label: key up to 1000 characters) is about 1 KB, so MAX_BODY leaves room and no
more. The app enforces it with FastAPI's `max_body_size` (Starlette's RequestBodyLimitMiddleware): a declared
Content-Length above it gets 413 without the body being read, a chunked body is cut off at the limit. Host
names are checked by Starlette's TrustedHostMiddleware against `allowed_hosts` (a DNS-rebinding page reaches
the server under its own name and gets 400).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from urllib.parse import urlsplit

from l2i_pipeline.core.errors import ConfigError

MAX_BODY = 4096
LOGIN_FAILURES = 10  # failed logins per client address ...
LOGIN_WINDOW_S = 300.0  # ... within this many seconds; then 429 until the oldest ages out
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
ANY_INTERFACE = ("0.0.0.0", "::", "")


def host_name(url_or_host: str) -> str:
    """The Host-header form of a host or URL: lower case, no port, IPv6 literals in brackets."""
    text = url_or_host.strip()
    if text.count(":") > 1 and "[" not in text and "/" not in text:  # a bare IPv6 literal such as ::1
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


def public_origin(url: str) -> str:
    """The origin (scheme://host[:port], lower case, default port dropped) of a --url; refuses one the app
    cannot be served at: another scheme, no host, or a path, query or fragment (the app lives at the root)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"--url {url!r}: {e}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--url {url!r}: give the base URL annotators open, e.g. https://label.lab.org")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"--url {url!r}: the app must be served at the root of a host name, without a path")
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}[scheme]
    host = host_name(parts.hostname)
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


class FailureLimiter:
    """Counts failures per client address in a sliding window (in memory: a restart forgets them)."""

    def __init__(self, limit: int = LOGIN_FAILURES, window_s: float = LOGIN_WINDOW_S):
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        q = self._failures.setdefault(client, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def retry_after(self, client: str) -> float:
        """Seconds until this client may try again; 0 when it may now."""
        now = time.monotonic()
        with self._lock:
            q = self._recent(client, now)
            return q[0] + self.window_s - now if len(q) >= self.limit else 0.0

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 10_000:  # many addresses: forget those with nothing recent
                self._failures = {c: q for c, q in self._failures.items() if q and q[-1] > now - self.window_s}
            self._recent(client, now).append(now)
