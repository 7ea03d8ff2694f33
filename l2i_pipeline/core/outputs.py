"""Where a command writes and what it reads, checked before any work: one clear line per mistake."""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq

from l2i_pipeline.core.errors import InputError, NotFound, StorageError
from l2i_pipeline.core.storage import Store, as_store, open_store, split_protocol


def check_output(url: str | os.PathLike, flag: str = "--output",
                 storage_options: dict | str | None = None) -> None:
    """An output location must be a directory (or not exist yet) and writable; nothing is created here.
    `storage_options` (`--storage-options`) are the ones the job will use: credentials may be only there."""
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


def check_l2i_dir(location: str | os.PathLike | Store, command: str) -> None:
    """An L2I(U) shard directory, not a raw `l2i download` one (those have no status/reason columns)."""
    store = as_store(location)
    if not store.exists():
        raise NotFound(f"{store.url} not found")
    if store.local and not Path(store.root).is_dir():
        raise InputError(f"{store.url} is a file; `{command}` reads a directory of L2I(U) shards")
    parquets = [n for n in store.list(".parquet") if not n.startswith(".")]
    if parquets:
        with store.open(parquets[0]) as f:
            names = pq.read_schema(f).names
        if "reason" not in names:
            raise InputError(f"{store.url} holds raw shards (`l2i download` output), not L2I(U) shards; run "
                             f"`l2i synthesize --input {store.url} --output DIR` first, then `{command}` on DIR")
