"""Workers write: encoded samples leave the pipeline as parts in the output store, and a worker assembles
each finished shard from its parts (docs/ARCHITECTURE.md, "Unit of work").

Why parts: GPU stages need full batches of samples, and a batch mixes shards, so a shard's samples finish
in many workers at different times. Each batch's last task writes one part per shard it holds
(`_parts/NAME/<digest of its keys>.tar`: the encoded members plus one index row per sample) and returns
only (shard, part, keys). The driver counts keys per shard; when a shard has all its rows it starts a
finalize task, which reads the parts, keeps one copy per key, and commits the shard (tar, parquet, marker
last; see core/commit.py). Part names depend only on their keys, so a retried task overwrites its own
part instead of adding one; duplicates across parts are dropped by key.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from collections import defaultdict
from typing import Any

import numpy as np

from l2i_pipeline.core.commit import Entry, commit_entries, sample_entries
from l2i_pipeline.core.sample import Sample
from l2i_pipeline.core.storage import Store
from l2i_pipeline.formats.tar import iter_tar_stream, write_tar

PARTS = "_parts"
ROW = "row.json"  # the index row travels beside the members in a part


def part_bytes(entries: list[Entry]) -> bytes:
    """The index row (ROW) then the members (sorted) of each entry, as one deterministic tar."""
    def files(key: str, row: dict[str, Any], members: dict[str, bytes] | None):
        yield f"{key}.{ROW}", json.dumps(row, sort_keys=True).encode()
        yield from ((f"{key}.{ext}", data) for ext, data in sorted((members or {}).items()))
    return write_tar(f for e in entries for f in files(*e))


def read_part(data: bytes, label: str) -> list[Entry]:
    errors: list[str] = []
    out = []
    for key, members in iter_tar_stream(io.BytesIO(data), label, errors):
        row = json.loads(members.pop(ROW))
        out.append((key, row, members if row["status"] == "ok" else None))
    if errors:
        raise OSError(f"part {label} is damaged: {errors[0]}")
    return out


def part_name(unit: str, keys: list[str]) -> str:
    digest = hashlib.sha1("\n".join(sorted(keys)).encode()).hexdigest()[:16]
    return f"{PARTS}/{unit}/{digest}.tar"


def write_parts(out: Store, samples: list[Sample]) -> list[dict[str, Any]]:
    """One part per shard among `samples`; returns the small records the driver needs."""
    by_unit: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_unit[s.unit].append(s)
    records = []
    for unit, group in sorted(by_unit.items()):
        keys = sorted({s.key for s in group})
        name = part_name(unit, keys)
        try:
            out.put(name, part_bytes(sample_entries(group)))  # retried with backoff inside
        except Exception as e:  # noqa: BLE001 - the shard is named as not written; the job goes on
            records.append({"unit": unit, "part": "", "keys": keys, "error": f"{type(e).__name__}: {e}"})
            continue
        records.append({"unit": unit, "part": name, "keys": keys, "error": ""})
    return records


def records_batch(records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """write_parts' records as the Ray Data batch the driver reads (no pixels go back)."""
    return {"unit": np.array([r["unit"] for r in records], dtype=object),
            "part": np.array([r["part"] for r in records], dtype=object),
            "keys": np.array([json.dumps(r["keys"]) for r in records], dtype=object),
            "error": np.array([r["error"] for r in records], dtype=object)}


def finalize_unit(out: Store, unit: str, input_name: str, parts: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """Assemble a complete shard from its parts and commit it; the parts are removed afterwards, with their
    directory `_parts/NAME/` (a local store keeps an emptied directory)."""
    t0 = time.time()
    entries: dict[str, Entry] = {}
    for p in sorted(parts):
        for e in read_part(out.get(p), out.url_of(p)):
            entries.setdefault(e[0], e)
    stats = commit_entries(out, unit, list(entries.values()), {**extra, "input_shard": input_name})
    for p in parts:
        out.delete(p)
    out.delete_tree(f"{PARTS}/{unit}")
    stats["seconds"] = round(time.time() - t0, 3)
    return stats
