"""The held-out test split: a stable hash of (seed, key), so training and evaluation agree without a list.

sha256, not Python's `hash`: the same key lands on the same side in every process, machine and version.
"""
from __future__ import annotations

import hashlib


def split_value(key: str, split_seed: int) -> float:
    """A uniform number in [0, 1) fixed by the seed and the sample key."""
    digest = hashlib.sha256(f"{split_seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_test(key: str, test_fraction: float, split_seed: int) -> bool:
    """True when `key` belongs to the held-out test split (about `test_fraction` of all keys)."""
    return split_value(key, split_seed) < test_fraction
