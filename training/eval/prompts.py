"""`l2i eval prompts`: the captions of LL2I-E as a prompts parquet for `l2i sample --prompts`.

The paper's CLIP score and FID are measured on samples generated from the held-out split's captions.
The file is one whole-object put through the storage layer: a local path or a storage URL.
"""
from __future__ import annotations

import io
import os
from collections.abc import Callable

from l2i_pipeline.core.errors import InputError
from l2i_pipeline.core.storage import Store, open_parent
from training.eval.sources import ll2ie_set

IsTest = Callable[[str, float, int], bool]


def write_prompts(real: str | Store, out: str | os.PathLike, test_fraction: float, split_seed: int,
                  limit: int = 20_000, is_test: IsTest | None = None,
                  storage_options: dict | str | None = None) -> int:
    """Write `out` (parquet: key, prompt) from the held-out split of `real`; returns the number of prompts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    s = ll2ie_set(real, test_fraction, split_seed, limit, is_test)
    if not s.keys:
        raise InputError(f"no ok sample of {real} is in the held-out split (test_fraction={test_fraction}, "
                         f"split_seed={split_seed})")
    store, name = open_parent(os.path.expanduser(os.fspath(out)), storage_options)
    buf = io.BytesIO()
    pq.write_table(pa.table({"key": s.keys, "prompt": [s.captions[k] for k in s.keys]}), buf)
    store.put(name, buf.getvalue())
    return len(s.keys)
