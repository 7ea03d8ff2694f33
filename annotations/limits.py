"""Limits for a shared host: how big a request body may be, and which Host names the app answers.

The largest valid body (a label: key up to 1000 characters) is about 1 KB, so MAX_BODY leaves room and no
more. The app enforces it with FastAPI's `max_body_size` (Starlette's RequestBodyLimitMiddleware): a declared
Content-Length above it gets 413 without the body being read, a chunked body is cut off at the limit. Host
names are checked by Starlette's TrustedHostMiddleware against `allowed_hosts` (a DNS-rebinding page reaches
the server under its own name and gets 400).
"""
from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from l2i_pipeline.core.errors import ConfigError

MAX_BODY = 4096
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
