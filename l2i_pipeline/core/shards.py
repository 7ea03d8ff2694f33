"""Shard formats: img2dataset raw shards in, LAION-L2I shards out (docs/ARCHITECTURE.md, "Shard format").

Every location is a `Store` (or a path/URL turned into one). An output shard is `NAME.tar`, `NAME.parquet`
and `NAME_stats.json`. Commit protocol (it works on stores without rename):
- the bytes are deterministic (sorted keys, no wall-clock times in the tar), so any attempt at a shard
  writes the same objects and a retried or zombie attempt cannot disagree with another;
- each file is built in memory and uploaded whole, data files first, the marker `NAME_stats.json` last;
- the marker records each data file's size and sha256; readers list markers once and check sizes against
  the listing (and digests when they read a file whole), so a half-written shard is invisible and a torn
  one is an error, never silently used;
- a shard without a marker is redone and its leftovers are overwritten.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.sample import Sample
from l2i_pipeline.core.storage import Store, as_store

log = logging.getLogger(__name__)

# LAION columns carried from the raw parquet into each sample's json (both spellings of aesthetic).
LAION_COLUMNS = ["similarity", "hash", "punsafe", "pwatermark", "aesthetic", "AESTHETIC_SCORE", "WIDTH", "HEIGHT"]
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tiff", "img")
MEMBERS = ("jpg", "fg.png", "mask.png", "inpaint_mask.png", "bg.png", "txt", "json")
MARKER = "_stats.json"

INDEX_SCHEMA = pa.schema([
    ("key", pa.string()), ("status", pa.string()), ("reason", pa.string()), ("caption", pa.string()),
    ("url", pa.string()), ("orig_width", pa.int64()), ("orig_height", pa.int64()),
    ("aesthetic", pa.float64()), ("similarity", pa.float64()), ("punsafe", pa.float64()),
    ("pwatermark", pa.float64()), ("mask_area", pa.float64()), ("components", pa.int64()),
    ("meta", pa.string()),
])


@dataclass(frozen=True)
class Unit:
    """One output shard: rows [start, stop) of one input shard in key order, named from both.

    It holds no rows, so planning a job keeps O(shards) in the driver; the read task reads the rows.
    """

    name: str
    input_name: str
    start: int
    stop: int

    @property
    def count(self) -> int:
        return self.stop - self.start


@dataclass
class TarReadResult:
    members: dict[str, dict[str, bytes]]
    error: str | None = None  # set when the tar is damaged; members holds what came before it


class ShardError(InputError):
    """An output shard whose files disagree with its marker (torn, overwritten or tampered)."""


# ---------------------------------------------------------------- input side

def list_input_shards(raw: Store | str) -> list[str]:
    raw = as_store(raw)
    listing = raw.list(".tar")
    if not listing:
        if not raw.exists():
            raise NotFound(f"input directory not found: {raw.url}")
        raise NotFound(f"no .tar shards in {raw.url} (expected `l2i download` output)")
    return [n[: -len(".tar")] for n in listing]


def _tar_keys(raw: Store, name: str) -> list[str]:
    """Every key of a tar in member order, repeats included, plus the key cut by damage (if any)."""
    errors: list[str] = []
    cut: list[str] = []
    keys = [k for k, _ in iter_tar(raw, name, errors, cut)]
    return keys + cut


def _rename_duplicates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A key's second and later rows become `KEY#n` with `duplicate_of`, so they are recorded as rejected
    rows instead of colliding with the first one (a unit would otherwise never complete)."""
    seen: Counter[str] = Counter()
    for r in rows:
        seen[r["key"]] += 1
        if seen[r["key"]] > 1:
            r["duplicate_of"], r["key"] = r["key"], f"{r['key']}#{seen[r['key']]}"
    return sorted(rows, key=lambda r: r["key"])


def read_input_index(raw: Store | str, name: str) -> list[dict[str, Any]]:
    """Every input row of a raw shard (downloaded or not), sorted by key.

    img2dataset's per-shard parquet lists failed downloads too; without it, the tar's keys are the rows
    (a sample cut by damage included, so it is recorded as rejected rather than lost). A row without a
    key gets one made from its position, and a repeated key a `#n` suffix, so each is still accounted for.
    """
    raw = as_store(raw)
    if raw.exists(f"{name}.parquet"):
        rows = pq.read_table(io.BytesIO(raw.get(f"{name}.parquet"))).to_pylist()
        for i, r in enumerate(rows):
            if r.get("key") is None:
                r.update(key=f"{name}_row{i:06d}", status="failed_to_download", error_message="input:missing_key")
    else:
        rows = [{"key": k, "status": "success"} for k in _tar_keys(raw, f"{name}.tar")]
    return _rename_duplicates(sorted(rows, key=lambda r: r["key"]))


def count_input_rows(raw: Store, name: str) -> int:
    """Rows of a raw shard from its parquet footer alone (no data read), else from its tar."""
    if raw.exists(f"{name}.parquet"):
        with raw.open(f"{name}.parquet") as f:
            return pq.read_metadata(f).num_rows
    return len(read_input_index(raw, name))


def plan_units(raw: Store | str, out: Store | str, output_shard_size: int) -> tuple[list[Unit], int]:
    """All units of the job, minus the ones already complete in out. Returns (pending, n_done).

    Completeness comes from one listing of the output's markers, not one request per shard.
    """
    raw, out = as_store(raw), as_store(out)
    done_names = set(complete_shards(out))
    pending, done = [], 0
    for name in list_input_shards(raw):
        n = count_input_rows(raw, name)
        for i in range(0, max(n, 1), output_shard_size):
            unit = Unit(f"{name}_{i // output_shard_size:04d}", name, i, min(i + output_shard_size, n))
            if unit.name in done_names:
                done += 1
            elif unit.count:
                pending.append(unit)
    return pending, done


class _TailReader:
    """Wraps a stream for tarfile and keeps the last 1024 bytes seen, to check the end-of-archive marker."""

    def __init__(self, f: BinaryIO):
        self.f, self.tail = f, b""

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.tail = (self.tail + data)[-1024:]
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


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
        yield from iter_tar_stream(raw, store.url_of(name), errors, check_end=name.endswith(".tar"), cut=cut)


def iter_tar_stream(raw: BinaryIO, label: str, errors: list[str], check_end: bool = True,
                    cut: list[str] | None = None) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The tar reader behind every tar read. A damaged stream ends at the damage: every sample before it
    is yielded, the sample being read there (its members may be incomplete) is dropped, its key appended
    to `cut` and the error to `errors`. An intact uncompressed tar ends in zero blocks; one cut off exactly
    at a header boundary does not, and tarfile alone accepts it.
    """
    key, group = None, {}
    try:
        f = _TailReader(raw)
        with tarfile.open(fileobj=f, mode="r|*") as tf:
            for info in tf:
                if not info.isfile():
                    continue
                k, _, ext = os.path.basename(info.name).partition(".")
                if k != key:  # the previous sample is complete: hand it out before reading on
                    if group:
                        yield key, group
                    key, group = k, {}
                data = tf.extractfile(info).read()
                if len(data) != info.size:
                    raise tarfile.ReadError(f"member {info.name} cut short")
                group[ext] = data
        f.drain()
        if check_end and f.tail != bytes(1024):
            raise tarfile.ReadError("unexpected end of archive (no end-of-archive marker)")
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        errors.append(f"{type(e).__name__}: {e}")
        if key is not None and cut is not None:
            cut.append(key)
        log.warning("tar %s is damaged (%s); sample %s lost, the samples before it kept", label, errors[-1], key)
        return
    if group:
        yield key, group


def read_tar(source: Store | str, name: str | None = None) -> TarReadResult:
    errors: list[str] = []
    members = dict(iter_tar(source, name, errors))
    return TarReadResult(members, errors[0] if errors else None)


def image_member(members: dict[str, bytes]) -> bytes | None:
    for ext in IMAGE_EXTS:
        if ext in members:
            return members[ext]
    return None


# ---------------------------------------------------------------- output side: writing

Entry = tuple[str, dict[str, Any], "dict[str, bytes] | None"]  # (key, index row, members of an ok sample)


def tar_bytes(entries: list[Entry]) -> bytes:
    """The tar of the ok samples' members, byte for byte the same for the same samples."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for key, _, members in entries:
            # the paper's members in their order, then any others (alpha.png, l2.fg.png, ...) sorted
            for ext in [*MEMBERS, *sorted(set(members) - set(MEMBERS))] if members is not None else ():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode = len(members[ext]), 0, 0o644
                tf.addfile(info, io.BytesIO(members[ext]))
    return buf.getvalue()


def index_row(s: Sample) -> dict[str, Any]:
    m = s.meta

    def num(*names: str) -> float | None:
        """The first of `names` that holds a number (NaN, LAION's unknown, is skipped), else None."""
        for n in names:
            try:
                v = float(m.get(n))
            except (TypeError, ValueError):
                continue
            if v == v:
                return v
        return None

    def integer(name: str) -> int | None:
        v = m.get(name)
        return int(v) if isinstance(v, (int, float)) and v == v else None

    return {
        "key": s.key, "status": s.status, "reason": s.reason, "caption": s.caption,
        "url": m.get("url"), "orig_width": integer("orig_width"), "orig_height": integer("orig_height"),
        "aesthetic": num("aesthetic", "AESTHETIC_SCORE"), "similarity": num("similarity"),
        "punsafe": num("punsafe"), "pwatermark": num("pwatermark"),
        "mask_area": num("mask_area"), "components": integer("components"),
        "meta": json.dumps(m, default=str, sort_keys=True),
    }


def parquet_bytes(rows: list[dict[str, Any]], schema: pa.Schema = INDEX_SCHEMA) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf)
    return buf.getvalue()


def file_record(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def sample_entries(samples: list[Sample]) -> list[Entry]:
    return [(s.key, index_row(s), s.members if s.ok else None) for s in samples]


def write_output_shard(out: Store | str, name: str, samples: list[Sample],
                       extra_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write tar (ok samples), parquet (all samples), then the marker vouching for both; returns the stats."""
    return commit_entries(out, name, sample_entries(samples), extra_stats or {})


def commit_entries(out: Store | str, name: str, entries: list[Entry], extra: dict[str, Any]) -> dict[str, Any]:
    """One entry per key (the first wins), sorted by key, then committed as a shard."""
    entries = sorted({e[0]: e for e in reversed(entries)}.values(), key=lambda e: e[0])
    rows = [row for _, row, _ in entries]
    stats = {
        "name": name,
        "count": len(rows),
        "status": dict(Counter(r["status"] for r in rows)),
        "reasons": dict(Counter(r["reason"] for r in rows if r["status"] != "ok")),
        **extra,
    }
    return commit_shard(out, name, {".tar": tar_bytes(entries), ".parquet": parquet_bytes(rows)}, stats)


def commit_shard(out: Store | str, name: str, files: dict[str, bytes], stats: dict[str, Any]) -> dict[str, Any]:
    """Upload `NAME<suffix>` for each file whole, then the marker with their sizes and digests."""
    out = as_store(out)
    out.makedirs()
    for suffix, data in files.items():
        out.put(f"{name}{suffix}", data)
    stats = {**stats, "files": {f"{name}{suffix}": file_record(data) for suffix, data in files.items()}}
    out.put(f"{name}{MARKER}", json.dumps(stats, indent=2, sort_keys=True, default=str).encode())
    return stats


# ---------------------------------------------------------------- output side: reading

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
        t = pq.read_table(io.BytesIO(read_verified(out, name, ".parquet")))
        tables.append(t.append_column("shard", pa.array([name] * len(t), pa.string())))
    if not tables:
        return INDEX_SCHEMA.empty_table().append_column("shard", pa.array([], pa.string()))
    return pa.concat_tables(tables, promote_options="default")


def iter_output_samples(out: Store | str, name: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member: bytes}) for each ok sample of a complete output shard, verified against its marker."""
    out = as_store(out)
    data = read_verified(out, name, ".tar")
    errors: list[str] = []
    members = dict(iter_tar_stream(io.BytesIO(data), out.url_of(name + ".tar"), errors))
    if errors:
        raise ShardError(f"output shard {out.url_of(name)} is damaged: {errors[0]}")
    yield from sorted(members.items())
