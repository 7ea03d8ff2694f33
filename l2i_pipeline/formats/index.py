"""The index: one parquet row per input sample of a shard, accepted or not (docs/ARCHITECTURE.md).

`INDEX_SCHEMA` is the L2I shard's `NAME.parquet`; the row keeps the LAION measures as columns and the whole
json (`meta`) as a string. `LATENT_SCHEMA` is a latent shard's (`l2i encode`), one row per latent.
"""
from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# LAION columns carried from the raw parquet into each sample's json (both spellings of aesthetic).
LAION_COLUMNS = ["similarity", "hash", "punsafe", "pwatermark", "aesthetic", "AESTHETIC_SCORE", "WIDTH", "HEIGHT"]

INDEX_SCHEMA = pa.schema([
    ("key", pa.string()), ("status", pa.string()), ("reason", pa.string()), ("caption", pa.string()),
    ("url", pa.string()), ("orig_width", pa.int64()), ("orig_height", pa.int64()),
    ("aesthetic", pa.float64()), ("similarity", pa.float64()), ("punsafe", pa.float64()),
    ("pwatermark", pa.float64()), ("mask_area", pa.float64()), ("components", pa.int64()),
    ("meta", pa.string()),
])

LATENT_SCHEMA = pa.schema([("key", pa.string()), ("caption", pa.string()), ("split", pa.string())])


def index_row(key: str, status: str, reason: str | None, caption: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The index row of one sample (its key, status, rejection reason, caption and json fields)."""
    m = meta

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
        "key": key, "status": status, "reason": reason, "caption": caption,
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
