"""Where a command writes and what it reads, checked before any work: one clear line per mistake."""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq

from l2i_pipeline.core.errors import ConfigError, InputError, NotFound, StorageError
from l2i_pipeline.core.storage import Store, as_store, open_store, split_protocol
from l2i_pipeline.formats.names import PARQUET


def check_output(url: str | os.PathLike | Store, flag: str = "--output",
                 storage_options: dict | str | None = None) -> None:
    """An output location must be a directory (or not exist yet) and writable; nothing is created here.
    `storage_options` (`--storage-options`) are the ones the job will use: credentials may be only there;
    a Store brings its own."""
    if isinstance(url, Store):
        url, storage_options = url.url, url.storage_options
    url = os.fspath(url)
    protocol, path = split_protocol(url)
    if protocol != "file":
        open_store(url, storage_options).check_writable()  # a probe object, deleted again
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{flag} {url} is an existing file; give a directory (it is created if missing)")
    parent = p
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise StorageError(f"cannot write to {url}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StorageError(f"cannot write to {url}: {parent} is not writable by this user")


def _where(store: Store) -> str:
    """A location to compare: local paths with every symlink resolved, URLs as given."""
    return os.path.realpath(store.root) if store.local else store.url


def check_apart(inp: Store, out: Store, in_flag: str = "--input", out_flag: str = "--output") -> None:
    """The output neither is nor lies inside the input, nor holds it (symlinks resolved for local paths):
    either way the next run would read what this one writes as input."""
    if inp.protocol != out.protocol:
        return
    a, b = _where(inp), _where(out)
    seen = f" (symlinks resolved: {b} and {a})" if inp.local and (a, b) != (inp.root, out.root) else ""
    if b == a or b.startswith(a.rstrip("/") + "/"):
        raise ConfigError(f"{out_flag} {out.url} is (inside) {in_flag} {inp.url}{seen}; write elsewhere")
    if a.startswith(b.rstrip("/") + "/"):
        raise ConfigError(f"{out_flag} {out.url} holds {in_flag} {inp.url}{seen}; write elsewhere")


def _is_l2i(store: Store) -> bool | None:
    """Whether the shard directory holds L2I(U) shards (its index has a reason column); None: no index."""
    parquets = [n for n in store.list(PARQUET) if not n.startswith(".")]
    if not parquets:
        return None
    with store.open(parquets[0]) as f:
        return "reason" in pq.read_schema(f).names


def check_l2i_dir(location: str | os.PathLike | Store, command: str) -> None:
    """An L2I(U) shard directory, not a raw `l2i download` one (those have no status/reason columns)."""
    store = as_store(location)
    if not store.exists():
        raise NotFound(f"{store.url} not found")
    if store.local and not Path(store.root).is_dir():
        raise InputError(f"{store.url} is a file; `{command}` reads a directory of L2I(U) shards")
    if _is_l2i(store) is False:
        raise InputError(f"{store.url} holds raw shards (`l2i download` output), not L2I(U) shards; run "
                         f"`l2i synthesize --input {store.url} --output DIR` first, then `{command}` on DIR")


def check_raw_dir(store: Store) -> None:
    """Raw `l2i download` shards, not the output of `l2i synthesize` / `l2i filter` (every row would be
    rejected): the index has a reason column, or the directory has their run.json / filter_report.json."""
    made = next((n for n in ("run.json", "filter_report.json") if store.exists(n)), None)
    if made == "run.json" and "input_shards" not in store.get("run.json").decode(errors="replace"):
        made = None  # some other tool's run.json
    if made or _is_l2i(store):
        why = f"has {made}" if made else "its index has status/reason columns"
        raise InputError(f"{store.url} holds L2I(U) shards (`l2i synthesize` or `l2i filter` output: {why}), not "
                         "raw `l2i download` shards; give the download directory as --input")


def local_output(url: str | os.PathLike, what: str) -> Path:
    """The local path of an output that a command writes through the local filesystem only (a run dir, a
    sample dir, a report): a file:// URL is a path; any other URL is refused with one line (it would
    otherwise become a local directory named `s3:`)."""
    protocol, path = split_protocol(os.fspath(url))
    if protocol != "file":
        raise InputError(f"{what} must be a local path (or file://): {os.fspath(url)} is a {protocol}:// URL, "
                         f"which this command cannot write; write locally and copy the result to the bucket")
    return Path(path)
