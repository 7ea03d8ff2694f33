"""Refuse to fetch URLs that point into private networks (SSRF guard for `l2i download`).

LAION is a list of URLs chosen by strangers; a URL (or a redirect) to 169.254.169.254, 10.x or localhost
would make a worker read cloud credentials or internal services. The check sits where the socket is
opened: every connection, the first hop and every redirect, resolves the host once, refuses it if any
address is non-public, and connects to exactly the addresses it checked (no second lookup that a
rebinding DNS server could answer differently).

What does not depend on the URL is built once per process and shared by the download threads: the
openers and the TLS contexts (building one parses the CA bundle, milliseconds of CPU per request when it
was done per call); a TLS context is built only when the first https URL is fetched.
"""
from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import urllib.error
import urllib.request
from functools import cache, partial
from urllib.parse import urlsplit

ALLOWED_SCHEMES = ("http", "https")
MAX_BODY_BYTES = 64 * 1024 * 1024  # an image bigger than this is not a LAION thumbnail
USER_AGENT = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"


class UnsafeURLError(OSError):
    """The URL, a redirect target or an address its host resolves to is not allowed."""


def address_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why `ip` must not be contacted, or None when it is a public address."""
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:10.0.0.1 is 10.0.0.1
    if mapped is not None:
        ip = mapped
    for prop, words in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),  # 169.254.169.254, the cloud metadata service
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),  # before is_private, which also covers 240/4
        ("is_private", "private network"),  # 10/8, 172.16/12, 192.168/16, fc00::/7 (fd00:ec2::254)
    ):
        if getattr(ip, prop):
            return f"{words} address {ip}"
    if not ip.is_global:  # 100.64/10 carrier-grade NAT and other special-purpose ranges
        return f"non-public address {ip}"
    return None


def check_url(url: str) -> str:
    """Refuse non-http(s) URLs and URLs without a host; return the host."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise UnsafeURLError(f"refused: scheme {parts.scheme or '(none)'!r} is not http(s)")
    if not parts.hostname:
        raise UnsafeURLError("refused: URL has no host")
    return parts.hostname


def resolve(host: str, port: int) -> list[tuple]:
    """getaddrinfo for TCP; a seam for tests that need a name to resolve to a chosen address."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def checked_addresses(host: str, port: int, allow_private_network: bool) -> list[tuple]:
    """Resolve `host`; refuse it if any of its addresses is not public (a mix is an attack too)."""
    infos = resolve(host, port)
    if not allow_private_network:
        for *_, sockaddr in infos:
            reason = address_refusal(ipaddress.ip_address(sockaddr[0].split("%")[0]))
            if reason:
                raise UnsafeURLError(f"refused: {reason}")
    return infos


def _create_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, *,
                       allow_private_network: bool):
    """socket.create_connection that connects only to the addresses it checked."""
    host, port = address
    error: OSError | None = None
    for family, socktype, proto, _, sockaddr in checked_addresses(host, port, allow_private_network):
        sock = socket.socket(family, socktype, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as e:
            error = e
            sock.close()
    raise error or OSError(f"no address for {host}")


class _SafeHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, allow_private_network: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = partial(_create_connection, allow_private_network=allow_private_network)


class _SafeHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, allow_private_network: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = partial(_create_connection, allow_private_network=allow_private_network)


class _SafeHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allow_private_network: bool):
        super().__init__()
        self.allow = allow_private_network

    def http_open(self, req):
        return self.do_open(partial(_SafeHTTPConnection, allow_private_network=self.allow), req)


@cache
def tls_context(verify: bool = True) -> ssl.SSLContext:
    """The process's TLS context (one verifying certificates, one not); SSLContext is thread-safe."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])  # as http.client does for the contexts it makes
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _SafeHTTPSHandler(urllib.request.HTTPSHandler):
    """`context` None: the shared `tls_context(verify)`, fetched at the first https connection."""

    def __init__(self, allow_private_network: bool, context: ssl.SSLContext | None = None, verify: bool = True):
        super().__init__(context=context)
        self.allow, self.verify = allow_private_network, verify

    def https_open(self, req):
        conn = partial(_SafeHTTPSConnection, allow_private_network=self.allow)
        return self.do_open(conn, req, context=self._context or tls_context(self.verify))


class _SafeRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s); the connection itself checks the new host's addresses."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def make_opener(allow_private_network: bool = False, context: ssl.SSLContext | None = None, verify: bool = True):
    """A urllib opener whose every connection and redirect goes through the checks above.

    Environment proxies are not used: through a proxy the address that is finally contacted cannot be
    checked here.
    """
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _SafeHTTPHandler(allow_private_network),
        _SafeHTTPSHandler(allow_private_network, context, verify),
        _SafeRedirectHandler(),
    )


@cache
def shared_opener(allow_private_network: bool, verify: bool = True):
    """One opener per process and setting, used by every download thread (openers keep no per-request state)."""
    return make_opener(allow_private_network, verify=verify)


def error_text(err: BaseException) -> str:
    """One readable line per failure: 'refused: ...', 'HTTP Error 404: Not Found', '[Errno -2] ...'."""
    if isinstance(err, urllib.error.HTTPError):
        return str(err)
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err) or type(err).__name__


def fetch(url: str, timeout: float = 10, *, allow_private_network: bool = False,
          headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None, verify: bool = True):
    """GET `url` safely; returns (body, response headers). Raises UnsafeURLError or urllib errors.

    `context` (a TLS context of the caller's) or else the process's shared one, verifying unless `verify` is False.
    """
    check_url(url)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    opener = make_opener(allow_private_network, context) if context else shared_opener(allow_private_network, verify)
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.URLError as e:
        if isinstance(e.reason, UnsafeURLError):  # urllib wraps what the connection raised
            raise e.reason from None
        raise
    with response:
        body = response.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise UnsafeURLError(f"refused: body larger than {MAX_BODY_BYTES} bytes")
        return body, response.headers


def safe_download_image(row, timeout, user_agent_token=None, disallowed_header_directives=None,
                        ignore_ssl_certificate=False, *, allow_private_network=False):
    """Drop-in for `img2dataset.downloader.download_image` (1.45+ signatures): (key, stream|None, error)."""
    key, url = row
    agent = USER_AGENT
    if user_agent_token:
        agent += f" (compatible; {user_agent_token}; +https://github.com/rom1504/img2dataset)"
    try:
        body, headers = fetch(url, timeout, allow_private_network=allow_private_network,
                              headers={"User-Agent": agent}, verify=not ignore_ssl_certificate)
    except Exception as err:  # noqa: BLE001  # every failure is a recorded row
        return key, None, error_text(err)
    # img2dataset's own X-Robots-Tag rule, unchanged (imported here: img2dataset takes seconds to import)
    from img2dataset.downloader import is_disallowed

    if disallowed_header_directives and is_disallowed(headers, user_agent_token, disallowed_header_directives):
        return key, None, "Use of image disallowed by X-Robots-Tag directive"
    return key, io.BytesIO(body), None


def install_in_img2dataset(allow_private_network: bool) -> None:
    """Route img2dataset's downloads in *this process* through `safe_download_image`.

    Called at the start of every shard, in the worker that runs it (spawned process or Ray task), since
    module patches made in the parent do not survive `spawn`.
    """
    import img2dataset.downloader as d

    d.download_image = partial(safe_download_image, allow_private_network=allow_private_network)
