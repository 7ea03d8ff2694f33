"""Shard IO: img2dataset raw shards in, LAION-L2I shards out (ARCHITECTURE.md, "Shard format").

An output shard is `NAME.tar`, `NAME.parquet`, `NAME_stats.json`; each is written to a temporary name
and renamed, the stats file last: its presence is the completion marker a rerun trusts.
"""
from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from l2i_pipeline.core.errors import NotFound
from l2i_pipeline.core.sample import Sample

log = logging.getLogger(__name__)

# LAION columns carried from the raw parquet into each sample's json (both spellings of aesthetic).
LAION_COLUMNS = ["similarity", "hash", "punsafe", "pwatermark", "aesthetic", "AESTHETIC_SCORE", "WIDTH", "HEIGHT"]
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tiff", "img")
MEMBERS = ("jpg", "fg.png", "mask.png", "inpaint_mask.png", "bg.png", "txt", "json")

INDEX_SCHEMA = pa.schema([
    ("key", pa.string()), ("status", pa.string()), ("reason", pa.string()), ("caption", pa.string()),
    ("url", pa.string()), ("orig_width", pa.int64()), ("orig_height", pa.int64()),
    ("aesthetic", pa.float64()), ("similarity", pa.float64()), ("punsafe", pa.float64()),
    ("pwatermark", pa.float64()), ("mask_area", pa.float64()), ("components", pa.int64()),
    ("meta", pa.string()),
])


@dataclass
class Unit:
    """One output shard: a fixed-size chunk of one input shard, named from both."""

    name: str
    input_name: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # raw index rows, in key order


@dataclass
class TarReadResult:
    members: dict[str, dict[str, bytes]]
    error: str | None = None  # set when the tar is damaged; members holds what came before it


# ---------------------------------------------------------------- input side

def list_input_shards(raw_dir: str | Path) -> list[str]:
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise NotFound(f"input directory not found: {raw}")
    names = sorted(p.stem for p in raw.glob("*.tar"))
    if not names:
        raise NotFound(f"no .tar shards in {raw} (expected `l2i download` output)")
    return names


def _tar_keys(path: Path) -> list[str]:
    """Every key of a tar in member order, repeats included, plus the key cut by damage (if any)."""
    errors: list[str] = []
    cut: list[str] = []
    keys = [k for k, _ in iter_tar(path, errors, cut)]
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


def read_input_index(raw_dir: str | Path, name: str) -> list[dict[str, Any]]:
    """Every input row of a raw shard (downloaded or not), sorted by key.

    img2dataset's per-shard parquet lists failed downloads too; without it, the tar's keys are the rows
    (a sample cut by damage included, so it is recorded as rejected rather than lost).
    """
    raw = Path(raw_dir)
    pq_path = raw / f"{name}.parquet"
    if pq_path.exists():
        rows = pq.read_table(pq_path).to_pylist()
        rows = [r for r in rows if r.get("key") is not None]
    else:
        rows = [{"key": k, "status": "success"} for k in _tar_keys(raw / f"{name}.tar")]
    return _rename_duplicates(sorted(rows, key=lambda r: r["key"]))


def plan_units(raw_dir: str | Path, out_dir: str | Path, samples_per_shard: int) -> tuple[list[Unit], int]:
    """All units of the job, minus the ones already complete in out_dir. Returns (pending, n_done)."""
    pending, done = [], 0
    for name in list_input_shards(raw_dir):
        rows = read_input_index(raw_dir, name)
        for i in range(0, max(len(rows), 1), samples_per_shard):
            unit = Unit(f"{name}_{i // samples_per_shard:04d}", name, rows[i:i + samples_per_shard])
            if is_complete(out_dir, unit.name):
                done += 1
            elif unit.rows:
                pending.append(unit)
    return pending, done


def _has_end_marker(path: Path) -> bool:
    """An intact uncompressed tar ends in zero blocks; a cut-off one (at a header boundary) does not."""
    size = path.stat().st_size
    if path.suffix != ".tar":
        return True  # compressed: damage shows up as a decompression error instead
    if size < 1024:
        return False
    with open(path, "rb") as f:
        f.seek(size - 1024)
        return f.read(1024) == bytes(1024)


def iter_tar(path: str | Path, errors: list[str], cut: list[str] | None = None
             ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Stream a WebDataset tar as (key, {ext: bytes}); members of a key are consecutive.

    A truncated or corrupt tar ends the stream at the damage: every sample before it is yielded, the
    sample being read there (its members may be incomplete) is dropped and its key appended to `cut`,
    and the error is appended to `errors`.
    """
    path = Path(path)
    key, group = None, {}
    try:
        with tarfile.open(path, "r|*") as tf:
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
        if not _has_end_marker(path):
            raise tarfile.ReadError("unexpected end of archive (no end-of-archive marker)")
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        errors.append(f"{type(e).__name__}: {e}")
        if key is not None and cut is not None:
            cut.append(key)
        log.warning("input tar %s is damaged (%s); sample %s lost, the samples before it kept", path, errors[-1], key)
        return
    if group:
        yield key, group


def read_tar(path: str | Path) -> TarReadResult:
    errors: list[str] = []
    members = dict(iter_tar(path, errors))
    return TarReadResult(members, errors[0] if errors else None)


def image_member(members: dict[str, bytes]) -> bytes | None:
    for ext in IMAGE_EXTS:
        if ext in members:
            return members[ext]
    return None


# ---------------------------------------------------------------- output side

def is_complete(out_dir: str | Path, name: str) -> bool:
    return (Path(out_dir) / f"{name}_stats.json").exists()


def list_output_shards(out_dir: str | Path) -> list[str]:
    """Names of complete output shards (those whose stats marker exists), sorted."""
    return sorted(p.name[: -len("_stats.json")] for p in Path(out_dir).glob("*_stats.json"))


def atomic_write(path: Path, data: bytes) -> None:
    """Temp name in the same directory, fsync, rename: readers see the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _tar_bytes(samples: list[Sample]) -> bytes:
    buf = io.BytesIO()
    mtime = time.time()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for s in samples:
            for ext in MEMBERS:
                data = s.members[ext]
                info = tarfile.TarInfo(f"{s.key}.{ext}")
                info.size, info.mtime, info.mode = len(data), mtime, 0o644
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def index_row(s: Sample) -> dict[str, Any]:
    m = s.meta

    def num(*names: str) -> float | None:
        for n in names:
            v = m.get(n)
            if v is not None:
                try:
                    return float(v)
                except (TypeError, ValueError):
                    return None
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


def write_output_shard(out_dir: str | Path, name: str, samples: list[Sample],
                       extra_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write tar (ok samples), parquet (all samples) and the stats marker, in that order, atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples = sorted(samples, key=lambda s: s.key)
    ok = [s for s in samples if s.ok]
    atomic_write(out / f"{name}.tar", _tar_bytes(ok))
    table = pa.Table.from_pylist([index_row(s) for s in samples], schema=INDEX_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write(out / f"{name}.parquet", buf.getvalue())
    stats = {
        "name": name,
        "count": len(samples),
        "status": dict(Counter(s.status for s in samples)),
        "reasons": dict(Counter(s.reason for s in samples if not s.ok)),
        **(extra_stats or {}),
    }
    atomic_write(out / f"{name}_stats.json", json.dumps(stats, indent=2, sort_keys=True).encode())
    return stats


def read_output_index(out_dir: str | Path, names: list[str] | None = None) -> pa.Table:
    """The parquet rows of complete output shards, with a `shard` column."""
    out = Path(out_dir)
    tables = []
    for name in names if names is not None else list_output_shards(out):
        t = pq.read_table(out / f"{name}.parquet")
        tables.append(t.append_column("shard", pa.array([name] * len(t), pa.string())))
    if not tables:
        return INDEX_SCHEMA.empty_table().append_column("shard", pa.array([], pa.string()))
    return pa.concat_tables(tables)


def iter_output_samples(out_dir: str | Path, name: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member: bytes}) for each ok sample of a complete output shard."""
    result = read_tar(Path(out_dir) / f"{name}.tar")
    if result.error:
        raise OSError(f"output shard {name} is damaged: {result.error}")
    yield from sorted(result.members.items())

