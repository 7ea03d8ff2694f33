"""Where a command writes and what it reads, checked before any work: one clear line per mistake."""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq

from l2i_pipeline.core.errors import InputError, NotFound, StorageError
from l2i_pipeline.core.storage import open_store, split_protocol


def check_output(url: str | os.PathLike, flag: str = "--output") -> None:
    """An output location must be a directory (or not exist yet) and writable; nothing is created here."""
    url = os.fspath(url)
    protocol, path = split_protocol(url)
    if protocol != "file":
        open_store(url).check_writable()  # a probe object, deleted again
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


def check_l2i_dir(path: str | os.PathLike, command: str) -> None:
    """An L2I(U) shard directory, not a raw `l2i download` one (those have no status/reason columns)."""
    p = Path(path)
    if not p.exists():
        raise NotFound(f"{p} not found")
    if not p.is_dir():
        raise InputError(f"{p} is a file; `{command}` reads a directory of L2I(U) shards")
    parquets = sorted(p.glob("[!.]*.parquet"))
    if parquets and "reason" not in pq.read_schema(parquets[0]).names:
        raise InputError(f"{p} holds raw shards (`l2i download` output), not L2I(U) shards; run "
                         f"`l2i synthesize --input {p} --output DIR` first, then `{command}` on DIR")
