"""The annotation pool: a seeded random sample of ok samples, split train/test, with a byte-offset index.

The index stores each member's TarInfo.offset_data and size, so the server reads one sample's images
with one ranged read instead of scanning its tar; the samples may live on a local path or a storage URL.
"""
from __future__ import annotations

import functools
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from annotations import db
from l2i_pipeline.core.errors import ConfigError, InputError, NotFound
from l2i_pipeline.core.shards import list_output_shards, read_output_index
from l2i_pipeline.core.storage import Store, open_store
from l2i_pipeline.formats import tar
from l2i_pipeline.formats.names import BG, FG, INPAINT_MASK, JPG, MASK, TAR

log = logging.getLogger(__name__)

# The members the pages show; a sample missing one of them cannot be judged and is left out.
NEEDED = (JPG, FG, MASK, INPAINT_MASK, BG)


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


def ok_candidates(samples: Store) -> list[Candidate]:
    """Every ok sample of the complete shards, in (shard, key) order: the draw's deterministic input."""
    out = []
    for name in list_output_shards(samples):
        table = read_output_index(samples, [name]).select(["key", "status", "caption"])
        for row in table.to_pylist():
            if row["status"] == "ok" and row["key"]:
                out.append(Candidate(name, row["key"], row["caption"] or ""))
    return sorted(out, key=lambda c: (c.shard, c.key))


def member_offsets(samples: Store, tar_name: str, keys: set[str]) -> dict[str, dict[str, tuple[int, int]]]:
    """{key: {member: (offset_data, size)}} for the wanted keys; reads headers only (tarfile seeks past data)."""
    with samples.open(tar_name) as f:
        return tar.member_offsets(f, keys)


def split_sizes(size: int, test: int, available: int) -> tuple[int, int]:
    """(n, n_test): the whole pool is capped by what exists, keeping the test share of the request."""
    if size <= 0 or test < 0 or test > size:
        raise ConfigError(f"need 0 <= --test <= --size and --size > 0 (got size={size}, test={test})")
    n = min(size, available)
    return n, round(test * n / size)


def build_pool(conn, samples_dir: str | Path, size: int, test: int, seed: int,
               storage_options: dict | str | None = None) -> PoolResult:
    """Draw and store the pool. Refuses a database that already has one: labels point at its samples."""
    samples = open_store(samples_dir, storage_options)
    if not samples.exists():
        raise NotFound(f"samples directory not found: {samples.url}")
    if conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]:
        raise InputError("this database already has a pool; use a new --db file for a new pool")
    candidates = ok_candidates(samples)
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
        for key, members in member_offsets(samples, f"{shard}{TAR}", keys).items():
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
        settings = {"samples_dir": samples.url, "seed": str(seed), "size": str(size), "test": str(test),
                    "created": str(time.time())}
        conn.executemany("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", settings.items())
    log.info("pool: %s", json.dumps(counts))
    return PoolResult(counts["train"], counts["test"], len(candidates), dropped)


@dataclass
class SampleFiles:
    """Where one pooled sample's bytes are: its tar and each member's (offset, size)."""

    key: str
    store: Store
    tar: str
    members: dict[str, tuple[int, int]]

    def read(self, member: str) -> bytes:
        offset, size = self.members[member]
        data = self.store.fs.cat_file(self.store.path(self.tar), start=offset, end=offset + size)
        if len(data) != size:
            raise OSError(f"{self.store.url_of(self.tar)} is shorter than its index says (member {self.key}.{member})")
        return data


def sample_files(conn, key: str) -> SampleFiles | None:
    """Look a sample up by key only: the tar path comes from the pool, never from a request."""
    row = conn.execute("SELECT id, shard FROM samples WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    root = _store(db.get_meta(conn, "samples_dir", ""))
    members = {r["member"]: (r["offset"], r["size"]) for r in
               conn.execute("SELECT member, offset, size FROM members WHERE sample_id = ?", (row["id"],))}
    return SampleFiles(key, root, f"{Path(row['shard']).name}{TAR}", members)


@functools.lru_cache(maxsize=8)
def _store(url: str) -> Store:
    """One Store (and its connection pool) per samples location for the server's lifetime."""
    return open_store(url)
