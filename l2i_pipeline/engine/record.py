"""A job's run record: the resolved settings its output was made with, and the one check a rerun passes.

The record is one JSON object in the output (`sample.json`, `encode.json`). A rerun whose output-affecting
settings differ is refused, naming the keys and both values; nested objects are compared by their keys
(`settings.steps` is named `steps`). Per-unit provenance (score sidecars) uses the same `changed_keys`.
"""
from __future__ import annotations

import json
from typing import Any

from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.core.storage import Store


def flat(record: dict) -> dict:
    """One level of nesting merged into the top (the keys a refusal names)."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(v)
        else:
            out[k] = v
    return out


def changed_keys(old: dict, new: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """The keys of `new` whose value `old` does not share, sorted."""
    return sorted(k for k in new if k not in ignore and old.get(k) != new[k])


def check_run_record(out: Store, name: str, record: dict, what: str = "outputs", ignore: tuple[str, ...] = (),
                     sort_keys: bool = False) -> dict:
    """Write `record` as `out/name`, or check the one there: a differing key (not in `ignore`) is a
    ConfigError naming it. Returns the record in force."""
    if out.exists(name):
        old = json.loads(out.get(name))
        o, n = flat(old), flat(json.loads(json.dumps(record)))
        diff = changed_keys(o, n, ignore)
        if diff:
            values = ", ".join(f"{o.get(k)} != {n[k]}" for k in diff)
            raise ConfigError(f"{out.url} holds {what} made with other settings ({', '.join(diff)}: {values}; "
                              f"see its {name}); use a new --out")
        return old
    out.makedirs()
    out.put(name, json.dumps(record, indent=2, sort_keys=sort_keys).encode())
    return record
