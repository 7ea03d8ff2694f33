"""Raw shards in: img2dataset's tars and parquets, listed and planned into units (docs/ARCHITECTURE.md,
"Unit of work"). A unit is one output shard: a fixed-size chunk of one input shard."""
from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from l2i_pipeline.core.errors import NotFound
from l2i_pipeline.core.shards import complete_shards, iter_tar
from l2i_pipeline.core.storage import Store, as_store
from l2i_pipeline.formats.names import IMAGE_EXTS, PARQUET, TAR


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


def list_input_shards(raw: Store | str) -> list[str]:
    raw = as_store(raw)
    listing = raw.list(TAR)
    if not listing:
        if not raw.exists():
            raise NotFound(f"input directory not found: {raw.url}")
        raise NotFound(f"no .tar shards in {raw.url} (expected `l2i download` output)")
    return [n[: -len(TAR)] for n in listing]


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
    if raw.exists(f"{name}{PARQUET}"):
        rows = pq.read_table(io.BytesIO(raw.get(f"{name}{PARQUET}"))).to_pylist()
        for i, r in enumerate(rows):
            if r.get("key") is None:
                r.update(key=f"{name}_row{i:06d}", status="failed_to_download", error_message="input:missing_key")
    else:
        rows = [{"key": k, "status": "success"} for k in _tar_keys(raw, f"{name}{TAR}")]
    return _rename_duplicates(sorted(rows, key=lambda r: r["key"]))


def count_input_rows(raw: Store, name: str) -> int:
    """Rows of a raw shard from its parquet footer alone (no data read), else from its tar."""
    if raw.exists(f"{name}{PARQUET}"):
        with raw.open(f"{name}{PARQUET}") as f:
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


def image_member(members: dict[str, bytes]) -> bytes | None:
    for ext in IMAGE_EXTS:
        if ext in members:
            return members[ext]
    return None
