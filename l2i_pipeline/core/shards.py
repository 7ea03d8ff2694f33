"""Reading shards from a store: any WebDataset tar (raw or L2I), and complete output shards checked
against their markers (docs/ARCHITECTURE.md, "Unit of work, commit, resume"; the writer: core/commit.py;
the bytes: l2i_pipeline/formats/).

A shard without its marker `NAME_stats.json` does not exist for any reader; a marker whose sizes do not
match the listing is reported (the shard is torn), and a file read whole is checked against its digest.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from l2i_pipeline.core.errors import InputError
from l2i_pipeline.core.storage import Store, as_store
from l2i_pipeline.formats.index import INDEX_SCHEMA
from l2i_pipeline.formats.names import MARKER, PARQUET, TAR
from l2i_pipeline.formats.tar import iter_tar_stream


@dataclass
class TarReadResult:
    members: dict[str, dict[str, bytes]]
    error: str | None = None  # set when the tar is damaged; members holds what came before it


class ShardError(InputError):
    """An output shard whose files disagree with its marker (torn, overwritten or tampered)."""


# ---------------------------------------------------------------- any tar

def iter_tar(source: Store | str, name: str | None, errors: list[str],
             cut: list[str] | None = None) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Stream a WebDataset tar as (key, {ext: bytes}); members of a key are consecutive.

    `source` is a Store with `name` the tar's object name, or a path/URL of the tar with `name=None`.
    A truncated or corrupt tar ends the stream at the damage (see `iter_tar_stream`).
    """
    if name is None:
        parent, _, name = os.fspath(source).rstrip("/").rpartition("/")
        source = parent or "."
    store = as_store(source)
    with store.open(name) as raw:
        yield from iter_tar_stream(raw, store.url_of(name), errors, check_end=name.endswith(TAR), cut=cut)


def read_tar(source: Store | str, name: str | None = None) -> TarReadResult:
    errors: list[str] = []
    members = dict(iter_tar(source, name, errors))
    return TarReadResult(members, errors[0] if errors else None)


# ---------------------------------------------------------------- output shards

def complete_shards(out: Store | str) -> dict[str, dict[str, int]]:
    """{name: {file: size}} of the shards whose marker exists, from ONE listing of the directory."""
    listing = as_store(out).list()
    shards = {}
    for obj in listing:
        if obj.endswith(MARKER) and not obj.startswith("."):
            name = obj[: -len(MARKER)]
            shards[name] = {f: s for f, s in listing.items() if f.startswith(name + ".")}
    return dict(sorted(shards.items()))


def is_complete(out: Store | str, name: str) -> bool:
    return as_store(out).exists(f"{name}{MARKER}")


def list_output_shards(out: Store | str) -> list[str]:
    """Names of complete output shards (those whose marker exists), sorted."""
    return list(complete_shards(out))


def read_marker(out: Store | str, name: str) -> dict[str, Any]:
    return json.loads(as_store(out).get(f"{name}{MARKER}"))


def listing_mismatch(name: str, marker: dict[str, Any], sizes: dict[str, int]) -> str | None:
    """Why a shard's files, as listed ({file: size}, see `complete_shards`), disagree with the sizes its
    marker vouches for (a file missing or of another size), or None when they agree."""
    for file, want in sorted((marker.get("files") or {}).items()):
        if file not in sizes:
            return f"{file} is missing"
        if sizes[file] != want["size"]:
            return f"{file} is {sizes[file]} bytes, its marker {name}{MARKER} says {want['size']}"
    return None


def verified_shards(out: Store | str) -> tuple[list[str], dict[str, str]]:
    """(shards whose marker exists and whose listed files match it, {torn shard: why}), from one listing
    and each marker; nothing else is read. A marker without file records (img2dataset's) is taken as is."""
    out = as_store(out)
    good, torn = [], {}
    for name, sizes in complete_shards(out).items():
        try:
            problem = listing_mismatch(name, read_marker(out, name), sizes)
        except (ValueError, AttributeError, KeyError, TypeError) as e:  # not a json object with sizes
            problem = f"unreadable marker {name}{MARKER}: {type(e).__name__}: {e}"
        if problem:
            torn[name] = problem
        else:
            good.append(name)
    return good, torn


def read_verified(out: Store | str, name: str, suffix: str, marker: dict[str, Any] | None = None) -> bytes:
    """A data file of a complete shard, checked against the size and digest its marker vouches for."""
    out = as_store(out)
    marker = marker if marker is not None else read_marker(out, name)
    data = out.get(f"{name}{suffix}")
    want = (marker.get("files") or {}).get(f"{name}{suffix}")
    if want and (len(data) != want["size"] or hashlib.sha256(data).hexdigest() != want["sha256"]):
        raise ShardError(f"{out.url_of(name + suffix)} does not match its marker {name}{MARKER} "
                         f"(size {len(data)} vs {want['size']}): a torn or foreign write; rerun the job to redo it")
    return data


def read_output_index(out: Store | str, names: list[str] | None = None) -> pa.Table:
    """The parquet rows of complete output shards, with a `shard` column."""
    out = as_store(out)
    tables = []
    for name in names if names is not None else list_output_shards(out):
        t = pq.read_table(io.BytesIO(read_verified(out, name, PARQUET)))
        tables.append(t.append_column("shard", pa.array([name] * len(t), pa.string())))
    if not tables:
        return INDEX_SCHEMA.empty_table().append_column("shard", pa.array([], pa.string()))
    return pa.concat_tables(tables, promote_options="default")


def iter_output_samples(out: Store | str, name: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member: bytes}) for each ok sample of a complete output shard, verified against its marker."""
    out = as_store(out)
    data = read_verified(out, name, TAR)
    errors: list[str] = []
    members = dict(iter_tar_stream(io.BytesIO(data), out.url_of(name + TAR), errors))
    if errors:
        raise ShardError(f"output shard {out.url_of(name)} is damaged: {errors[0]}")
    yield from sorted(members.items())
