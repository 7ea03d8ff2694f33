"""The driver's bookkeeping: which shard has all of its rows, from small part records only.

Its memory is the keys of the shards in flight (bounded by `read_tasks`), never sample data. Records may
arrive in any order, twice (a retried task), or after their shard was finalized (a late duplicate): each
key counts once, and a shard is handed out for finalizing exactly once.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from l2i_pipeline.core.inputshards import Unit


@dataclass
class UnitTracker:
    units: dict[str, Unit]
    keys: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    parts: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    finalized: set[str] = field(default_factory=set)

    def add(self, unit: str, part: str, keys: list[str]) -> Unit | None:
        """Count a part; returns its shard when this record completes it (once per shard)."""
        if unit in self.finalized or unit not in self.units:
            return None  # a late duplicate of a shard already handed out
        self.keys[unit].update(keys)
        self.parts[unit].add(part)
        if len(self.keys[unit]) >= self.units[unit].count:
            self.finalized.add(unit)
            self.keys.pop(unit)
            return self.units[unit]
        return None

    def fail(self, unit: str) -> bool:
        """A part of `unit` could not be written: the shard is given up for this run (True the first time)."""
        if unit in self.finalized or unit not in self.units:
            return False
        self.finalized.add(unit)
        self.keys.pop(unit, None)
        return True

    def take_parts(self, unit: str) -> list[str]:
        return sorted(self.parts.pop(unit, ()))

    def unfinished(self) -> list[str]:
        return sorted(set(self.units) - self.finalized)
