"""The annotation pool: a seeded random sample of ok samples, split train/test, with a byte-offset index.

The index stores each member's TarInfo.offset_data and size, so the server reads one sample's images
with a seek and a read instead of scanning its tar.
"""
from __future__ import annotations

import json
import logging
import random
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from annotations import db
from l2i_pipeline.core.errors import ConfigError, InputError, NotFound
from l2i_pipeline.core.shards import list_output_shards

log = logging.getLogger(__name__)

# The members the pages show; a sample missing one of them cannot be judged and is left out.
NEEDED = ("jpg", "fg.png", "mask.png", "inpaint_mask.png", "bg.png")


@dataclass
class Candidate:
    shard: str
    key: str
    caption: str


@dataclass
class PoolResult:
    train: int
    test: int
    available: int
    dropped: int  # drawn but missing members in the tar


def ok_candidates(samples_dir: Path) -> list[Candidate]:
    """Every ok sample of the complete shards, in (shard, key) order: the draw's deterministic input."""
    out = []
    for name in list_output_shards(samples_dir):
        table = pq.read_table(samples_dir / f"{name}.parquet", columns=["key", "status", "caption"])
        for row in table.to_pylist():
            if row["status"] == "ok" and row["key"]:
                out.append(Candidate(name, row["key"], row["caption"] or ""))
    return sorted(out, key=lambda c: (c.shard, c.key))


def member_offsets(tar_path: Path, keys: set[str]) -> dict[str, dict[str, tuple[int, int]]]:
    """{key: {member: (offset_data, size)}} for the wanted keys; reads headers only (tarfile seeks past data)."""
    found: dict[str, dict[str, tuple[int, int]]] = {}
    with tarfile.open(tar_path, "r:") as tf:
        for info in tf:
            if not info.isfile():
                continue
            key, _, member = info.name.rpartition("/")[2].partition(".")
            if key in keys:
                found.setdefault(key, {})[member] = (info.offset_data, info.size)
    return found


def split_sizes(size: int, test: int, available: int) -> tuple[int, int]:
    """(n, n_test): the whole pool is capped by what exists, keeping the test share of the request."""
    if size <= 0 or test < 0 or test > size:
        raise ConfigError(f"need 0 <= --test <= --size and --size > 0 (got size={size}, test={test})")
    n = min(size, available)
    return n, round(test * n / size)


def build_pool(conn, samples_dir: str | Path, size: int, test: int, seed: int) -> PoolResult:
    """Draw and store the pool. Refuses a database that already has one: labels point at its samples."""
    samples_dir = Path(samples_dir).resolve()
    if not samples_dir.is_dir():
        raise NotFound(f"samples directory not found: {samples_dir}")
    if conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]:
        raise InputError("this database already has a pool; use a new --db file for a new pool")
    candidates = ok_candidates(samples_dir)
    n, n_test = split_sizes(size, test, len(candidates))
    if n < size:
        log.warning("only %d ok samples available; pool is %d (%d test) instead of %d", n, n, n_test, size)
    rng = random.Random(seed)
    drawn = rng.sample(candidates, n)
    draws = [rng.random() for _ in drawn]

    by_shard: dict[str, set[str]] = {}
    for c in drawn:
        by_shard.setdefault(c.shard, set()).add(c.key)
    offsets: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}
    for shard, keys in sorted(by_shard.items()):
        for key, members in member_offsets(samples_dir / f"{shard}.tar", keys).items():
            offsets[(shard, key)] = members

    counts = {"train": 0, "test": 0}
    dropped = 0
    with db.write(conn):
        for pos, (c, draw) in enumerate(zip(drawn, draws)):
            members = offsets.get((c.shard, c.key), {})
            if any(m not in members for m in NEEDED):
                log.warning("sample %s in %s lacks members %s; left out", c.key, c.shard,
                            [m for m in NEEDED if m not in members])
                dropped += 1
                continue
            split = "test" if pos < n_test else "train"
            cur = conn.execute(
                "INSERT OR IGNORE INTO samples (key, shard, split, pos, draw, caption) VALUES (?, ?, ?, ?, ?, ?)",
                (c.key, c.shard, split, pos, draw, c.caption))
            if not cur.rowcount:
                log.warning("duplicate key %s (shard %s); left out", c.key, c.shard)
                dropped += 1
                continue
            conn.executemany(
                "INSERT INTO members (sample_id, member, offset, size) VALUES (?, ?, ?, ?)",
                [(cur.lastrowid, m, off, sz) for m, (off, sz) in members.items()])
            counts[split] += 1
        settings = {"samples_dir": str(samples_dir), "seed": str(seed), "size": str(size), "test": str(test),
                    "created": str(time.time())}
        conn.executemany("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", settings.items())
    log.info("pool: %s", json.dumps(counts))
    return PoolResult(counts["train"], counts["test"], len(candidates), dropped)


@dataclass
class SampleFiles:
    """Where one pooled sample's bytes are: its tar and each member's (offset, size)."""

    key: str
    tar: Path
    members: dict[str, tuple[int, int]]

    def read(self, member: str) -> bytes:
        offset, size = self.members[member]
        with open(self.tar, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise OSError(f"{self.tar} is shorter than its index says (member {self.key}.{member})")
        return data


def sample_files(conn, key: str) -> SampleFiles | None:
    """Look a sample up by key only: the tar path comes from the pool, never from a request."""
    row = conn.execute("SELECT id, shard FROM samples WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    root = Path(db.get_meta(conn, "samples_dir", ""))
    members = {r["member"]: (r["offset"], r["size"]) for r in
               conn.execute("SELECT member, offset, size FROM members WHERE sample_id = ?", (row["id"],))}
    return SampleFiles(key, root / f"{Path(row['shard']).name}.tar", members)
