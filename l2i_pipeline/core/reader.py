"""Turn pending units of a raw shard into Samples: one per input row, downloaded or not."""
from __future__ import annotations

import json
import math
from collections.abc import Iterator

from l2i_pipeline.core.inputshards import Unit, image_member, read_input_index
from l2i_pipeline.core.sample import Sample
from l2i_pipeline.core.shards import iter_tar
from l2i_pipeline.core.storage import Store, as_store
from l2i_pipeline.formats.index import LAION_COLUMNS
from l2i_pipeline.formats.names import JSON, TAR, TXT

# img2dataset bookkeeping that is not metadata worth keeping per sample
_DROP = {"key", "status", "error_message", "caption", "exif", "__index_level_0__"}


def _laion_float(v) -> float:
    try:
        return float(v) if v is not None and not isinstance(v, bool) else math.nan
    except (TypeError, ValueError):
        return math.nan


def _meta(row: dict, side: dict) -> dict:
    """Every LAION column has one json type in every sample of every shard, never null (a null in one
    shard and a number in another breaks loaders that infer one schema, e.g. HF `datasets`): hash is an
    int or absent when unknown; the others are floats, NaN when unknown (as LAION's own parquet has it)."""
    meta = {k: v for k, v in {**row, **side}.items() if k not in _DROP and v is not None}
    for c in LAION_COLUMNS:
        v = meta.pop(c, None)
        if c != "hash":
            meta[c] = _laion_float(v)
        elif isinstance(v, int) and not isinstance(v, bool):
            meta[c] = v
        elif isinstance(v, float) and v.is_integer():  # a float column (pandas writes ints with NaN so)
            meta[c] = int(v)
    return meta


def _download_failure(row: dict) -> str:
    msg = str(row.get("error_message") or row.get("status") or "unknown").strip().splitlines()[0]
    return f"download:{msg[:200]}"


def read_units(raw: Store | str, input_name: str, units: list[Unit]) -> Iterator[Sample]:
    """Yield every row of the given units exactly once, streaming the input tar once."""
    raw = as_store(raw)
    rows = read_input_index(raw, input_name)
    by_key: dict[str, tuple[Unit, dict]] = {}
    for u in units:
        for row in rows[u.start:u.stop]:
            by_key[row["key"]] = (u, row)
    emitted: set[str] = set()
    errors: list[str] = []
    for key, members in iter_tar(raw, f"{input_name}{TAR}", errors):
        hit = by_key.get(key)
        if hit is None or key in emitted:
            continue
        unit, row = hit
        emitted.add(key)
        if row.get("status", "success") != "success":
            yield Sample(key, unit.name, caption=row.get("caption") or "", meta=_meta(row, {})).reject(
                _download_failure(row))
            continue
        try:
            side = json.loads(members.get(JSON, b"{}") or b"{}")
        except ValueError:
            side = {}
        caption = members[TXT].decode("utf-8", "replace") if TXT in members else (row.get("caption") or "")
        yield Sample(key, unit.name, caption=caption, meta=_meta(row, side), raw=image_member(members) or b"")
    for key, (unit, row) in by_key.items():
        if key in emitted:
            continue
        s = Sample(key, unit.name, caption=row.get("caption") or "", meta=_meta(row, {}))
        if row.get("duplicate_of"):  # a repeated key (see inputshards.read_input_index)
            yield s.reject("input:duplicate_key")
        elif row.get("status", "success") != "success":
            yield s.reject(_download_failure(row))
        else:
            if errors:
                s.meta["input_damage"] = errors[0]
            yield s.reject("input:truncated_tar" if errors else "input:missing_from_tar")
