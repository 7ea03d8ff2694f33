"""Storage is a URL everywhere: a local path, file://, s3://, gs:// or any installed fsspec protocol.

A `Store` is a directory-like location. Objects are written whole (`put`: the bytes are built first and
uploaded once, so an exception can never leave a truncated object — fsspec's `with fs.open(.., "wb")`
would upload what it had), locally through a temp file + fsync + rename. `create_exclusive` is a
conditional create (local O_EXCL, S3 If-None-Match, GCS generation match): the primitive behind output
locks. Transient store errors are retried with backoff. Credentials come from the standard places
(AWS/GCP environment and config files, `AWS_ENDPOINT_URL`) or `storage_options`; a Store pickles to Ray
workers with its options, but only `url` is ever logged or recorded.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

from l2i_pipeline.core.errors import NotFound, StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")

# protocol -> the pip extra that brings its fsspec implementation
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}
RETRIES = 5
BACKOFF_S = 0.5
_REACHED: set[str] = set()  # protocol://bucket of the stores that answered in this process


def _is_transient(e: BaseException) -> bool:
    """Worth retrying: timeouts, connection drops, 5xx/throttling. Not: missing, forbidden, exists."""
    if isinstance(e, (FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError,
                      StorageError)):
        return False
    if isinstance(e, (TimeoutError, ConnectionError)):
        return True
    text = f"{type(e).__name__} {e}".lower()
    return any(w in text for w in ("timeout", "timed out", "connection", "throttl", "slowdown", "slow down",
                                   "internalerror", "serviceunavailable", "503", "500", "502", "504",
                                   "temporar", "reset by peer", "broken pipe"))


def _is_unreachable(e: BaseException) -> bool:
    """The endpoint itself does not answer (refused, unknown host): a wrong URL more often than a blip."""
    if isinstance(e, ConnectionRefusedError):
        return True
    text = f"{type(e).__name__} {e}".lower()
    return any(w in text for w in ("could not connect", "cannot connect", "connect call failed", "connection refused",
                                   "name or service not known", "nodename nor servname"))


def storage_error(e: BaseException, what: str, retried: bool = True) -> StorageError | None:
    """The one-line StorageError for a store failure a user can act on (no access, no answer), else None."""
    if isinstance(e, (StorageError, FileNotFoundError, FileExistsError)):
        return None
    if isinstance(e, PermissionError) or "accessdenied" in str(e).lower().replace(" ", ""):
        return StorageError(f"{what}: access denied ({type(e).__name__}: {e}); check the credentials (AWS_*/GCP "
                            "environment, config files, instance profile or --storage-options) and the permissions")
    if _is_transient(e):
        how = f"after {RETRIES} attempts" if retried else "at the first attempt"
        return StorageError(f"{what}: the store did not answer {how} ({type(e).__name__}: {e}); check the "
                            "endpoint (AWS_ENDPOINT_URL, --storage-options) and the network")
    return None


def retry(fn: Callable[[], T], what: str, attempts: int = RETRIES, backoff: float = BACKOFF_S) -> T:
    """Run fn, retrying transient store errors with exponential backoff; the last error propagates."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - classified below
            if i == attempts - 1 or not _is_transient(e):
                raise
            delay = backoff * 2 ** i
            log.warning("%s failed (%s: %s); retry %d/%d in %.1f s", what, type(e).__name__, e, i + 1,
                        attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def split_protocol(url: str) -> tuple[str, str]:
    """('file', '/abs/path') for local paths and file:// URLs, else (protocol, 'bucket/key...')."""
    url = os.fspath(url)
    if "://" not in url:
        return "file", os.path.abspath(os.path.expanduser(url))
    proto, rest = url.split("://", 1)
    proto = proto.lower()
    if proto in ("file", "local"):
        return "file", os.path.abspath("/" + rest.lstrip("/")) if rest.startswith("/") else os.path.abspath(rest)
    return proto, rest.rstrip("/")


def _filesystem(protocol: str, options: dict[str, Any]):
    import fsspec

    try:
        cls = fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise StorageError(f"unknown storage protocol {protocol!r}; use a local path, file://, s3://, gs:// "
                           f"or an installed fsspec protocol") from None
    except ImportError as e:
        extra = EXTRAS.get(protocol)
        hint = f"pip install 'l2i-pipeline[{extra}]'" if extra else "install its fsspec implementation"
        raise StorageError(f"{protocol}:// needs an extra package ({e}); {hint}") from None
    opts = dict(options)
    if protocol in ("s3", "s3a") and os.environ.get("AWS_ENDPOINT_URL") and "endpoint_url" not in opts:
        opts["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]  # older s3fs/botocore ignore the variable
    try:
        return cls(**opts)
    except TypeError as e:
        raise StorageError(f"bad --storage-options for {protocol}://: {e}") from None


@dataclass
class Store:
    """A directory at `url`; names are relative to it (no leading slash)."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)
    _fs: Any = field(default=None, init=False, repr=False, compare=False)
    _fs_pid: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.protocol, self.root = split_protocol(self.url)
        self.url = self.root if self.protocol == "file" else f"{self.protocol}://{self.root}"

    def __str__(self) -> str:  # messages name the location, never the options
        return self.url

    def __getstate__(self) -> dict:
        return {"url": self.url, "storage_options": self.storage_options, "reached": self._reached}

    def __setstate__(self, state: dict) -> None:
        self.url, self.storage_options, self._fs, self._fs_pid = state["url"], state["storage_options"], None, 0
        self.__post_init__()
        if state.get("reached"):  # the driver reached it: a worker retries its blips as usual
            _REACHED.add(self._endpoint)

    @property
    def _endpoint(self) -> str:
        return f"{self.protocol}://{self.root.split('/', 1)[0]}"

    @property
    def _reached(self) -> bool:
        return self.local or self._endpoint in _REACHED

    def _call(self, fn: Callable[[], T], what: str) -> T:
        """fn with retries; no access, or no answer, becomes one StorageError naming `what`. A store that has
        not answered this process yet is not retried when its endpoint refuses or does not resolve: a wrong
        URL fails in seconds, not minutes."""
        reached = self._reached

        def attempt() -> T:
            try:
                return fn()
            except Exception as e:
                if not reached and _is_unreachable(e):
                    raise StorageError(f"{what}: cannot reach the store ({type(e).__name__}: {e}); check the "
                                       "endpoint (AWS_ENDPOINT_URL, --storage-options) and the network") from None
                raise

        try:
            out = retry(attempt, what)
        except Exception as e:
            mapped = storage_error(e, what)
            if mapped is not None:
                raise mapped from None
            raise
        _REACHED.add(self._endpoint)
        return out

    @property
    def local(self) -> bool:
        return self.protocol == "file"

    @property
    def fs(self):
        """The filesystem of this process: a forked child (a DataLoader worker) opens its own, since
        fsspec's async filesystems (s3fs, gcsfs) refuse to run in a fork of the process that made them."""
        if self._fs is None or self._fs_pid != os.getpid():
            self._fs, self._fs_pid = _filesystem(self.protocol, self.storage_options), os.getpid()
        return self._fs

    def path(self, name: str = "") -> str:
        return f"{self.root}/{name}" if name else self.root

    def url_of(self, name: str) -> str:
        return f"{self.url}/{name}"

    def child(self, name: str) -> Store:
        return Store(self.url_of(name), self.storage_options)

    # ------------------------------------------------------------ reading
    def exists(self, name: str = "") -> bool:
        return self._call(lambda: self.fs.exists(self.path(name)), f"look up {self.url_of(name)}")

    def get(self, name: str) -> bytes:
        try:
            return self._call(lambda: self.fs.cat_file(self.path(name)), f"read {self.url_of(name)}")
        except FileNotFoundError:
            raise NotFound(f"not found: {self.url_of(name)}") from None

    def open(self, name: str) -> BinaryIO:
        """A streaming reader (tars are read front to back without loading them whole)."""
        try:
            return self._call(lambda: self.fs.open(self.path(name), "rb"), f"open {self.url_of(name)}")
        except FileNotFoundError:
            raise NotFound(f"not found: {self.url_of(name)}") from None

    def list(self, suffix: str = "") -> dict[str, int]:
        """{name: size} of the objects directly under this directory, in one listing (no cache)."""
        def ls() -> list[dict]:
            self.fs.invalidate_cache(self.root)
            return self.fs.ls(self.root, detail=True)
        try:
            entries = self._call(ls, f"list {self.url}")
        except FileNotFoundError:
            return {}
        out = {}
        for e in entries:
            if e.get("type") == "directory":
                continue
            name = e["name"].rstrip("/").rsplit("/", 1)[-1]
            if name.endswith(suffix):
                out[name] = int(e.get("size") or 0)
        return dict(sorted(out.items()))

    def find(self, suffix: str = "") -> dict[str, int]:
        """{name relative to this directory: size} of every object below it, in one recursive listing."""
        def walk() -> dict:
            self.fs.invalidate_cache(self.root)
            return self.fs.find(self.root, detail=True)
        try:
            entries = self._call(walk, f"list {self.url}")
        except FileNotFoundError:
            return {}
        root = self.root.rstrip("/") + "/"
        out = {}
        for name, e in entries.items():
            rel = name[len(root):] if name.startswith(root) else name.rsplit("/", 1)[-1]
            if e.get("type") != "directory" and rel.endswith(suffix):
                out[rel] = int(e.get("size") or 0)
        return dict(sorted(out.items()))

    # ------------------------------------------------------------ writing
    def makedirs(self) -> None:
        if self.local:
            os.makedirs(self.root, exist_ok=True)

    def put(self, name: str, data: bytes) -> None:
        """Write the whole object at once; readers see the old object or the whole new one."""
        if self.local:
            _atomic_local_write(self.path(name), data)
            return
        self._call(lambda: self.fs.pipe_file(self.path(name), data), f"write {self.url_of(name)}")

    def create_exclusive(self, name: str, data: bytes) -> bool:
        """Create `name` only if it does not exist (atomic on the store); False when it already did."""
        if self.local:
            os.makedirs(self.root, exist_ok=True)
            try:
                fd = os.open(self.path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            return True
        try:
            self._call(lambda: self.fs.pipe_file(self.path(name), data, mode="create"), f"create {self.url_of(name)}")
        except FileExistsError:
            return False
        except Exception as e:  # S3-compatible stores answer 412 Precondition Failed
            if "412" in str(e) or "precondition" in str(e).lower():
                return False
            raise
        return True

    def delete(self, name: str) -> None:
        try:
            self._call(lambda: self.fs.rm_file(self.path(name)), f"delete {self.url_of(name)}")
        except FileNotFoundError:
            pass

    def delete_tree(self, name: str) -> None:
        """Remove `name` and everything under it (leftovers of killed runs)."""
        try:
            if self.exists(name):
                self._call(lambda: self.fs.rm(self.path(name), recursive=True), f"delete {self.url_of(name)}")
        except FileNotFoundError:
            pass

    def remove_temp_files(self) -> int:
        """Local stores only: the temp files of writes a crash interrupted (`.NAME.tmpPID`)."""
        if not self.local or not os.path.isdir(self.root):
            return 0
        leftovers = [n for n in os.listdir(self.root) if n.startswith(".") and ".tmp" in n]
        for n in leftovers:
            os.unlink(self.path(n))
        return len(leftovers)

    def check_writable(self) -> None:
        """One clear error before any work: missing bucket, no permission, no credentials."""
        probe = f".l2i-write-probe-{os.getpid()}-{time.time_ns()}"
        try:
            self.makedirs()
            self.put(probe, b"")
            self.delete(probe)
        except Exception as e:  # noqa: BLE001 - turned into one message naming the location
            raise StorageError(f"cannot write to {self.url}: {type(e).__name__}: {e}") from None

    def check_readable(self) -> None:
        try:
            ok = self.exists()
        except Exception as e:  # noqa: BLE001
            raise StorageError(f"cannot read {self.url}: {type(e).__name__}: {e}") from None
        if not ok:
            raise NotFound(f"not found: {self.url}")


def _atomic_local_write(path: str, data: bytes) -> None:
    """Temp name in the same directory, fsync, rename; the temp file is removed when any step fails."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk (ENOSPC), an interrupt: no hidden temp file stays behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def parse_storage_options(storage_options: dict[str, Any] | str | None) -> dict[str, Any]:
    """A dict, or the JSON text of `--storage-options`, as a dict; bad JSON is one clear error."""
    if isinstance(storage_options, str):
        import json

        try:
            storage_options = json.loads(storage_options) if storage_options.strip() else {}
        except ValueError as e:
            raise StorageError(f"--storage-options is not valid JSON: {e}") from None
        if not isinstance(storage_options, dict):
            raise StorageError("--storage-options must be a JSON object")
    return dict(storage_options or {})


def open_store(url: str | os.PathLike, storage_options: dict[str, Any] | str | None = None) -> Store:
    """A Store for `url`; `storage_options` is a dict or the JSON text of `--storage-options`."""
    store = Store(os.fspath(url), parse_storage_options(storage_options))
    store.fs  # noqa: B018 - fail now on an unknown protocol or a missing extra
    return store


def as_store(location: Store | str | os.PathLike) -> Store:
    """Accept a Store or anything `open_store` takes (paths and URLs), so callers need not care."""
    return location if isinstance(location, Store) else open_store(location)



def open_parent(url: str | os.PathLike, storage_options: dict[str, Any] | str | None = None) -> tuple[Store, str]:
    """(the Store of the directory holding the object `url`, its name): to `put` or `get` one file by URL."""
    protocol, path = split_protocol(os.fspath(url))
    if protocol == "file":
        parent, name = os.path.split(path)
        return open_store(parent, storage_options), name
    parent, _, name = os.fspath(url).rstrip("/").rpartition("/")
    if not name or parent.endswith(":/"):
        raise StorageError(f"{os.fspath(url)} names no object inside a bucket")
    return open_store(parent, storage_options), name
