"""What the training data is, from the shards' small files only: which shards, which keys, which split.

An L2I shard is `NAME.tar` + `NAME.parquet` + `NAME_stats.json`; the stats file (the marker) marks it
complete and vouches for the other two files' sizes and sha256, so only shards that have it are listed
(`core.shards.complete_shards`), a size that disagrees with the marker is refused here from the listing
alone, and each parquet is read verified (`core.shards.read_verified`, as every reader). Keys and counts
come from the parquet indexes (columns key, status), never from reading tars; only the `ok` rows are
samples. The held-out test split is by key hash (`split.py`). Tars are sorted by key (the writer sorts).
Image sizes are not checked here: every sample is centre-cropped to a square and resized when decoded
(`stream.decode_sample`), so shards of any size train together.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.outputs import check_l2i_dir
from l2i_pipeline.core.shards import ShardError, complete_shards, read_marker, read_verified
from l2i_pipeline.core.storage import Store
from training.config import DataConfig
from training.data.split import is_test

log = logging.getLogger(__name__)


@dataclass
class ShardIndex:
    name: str
    train_keys: list[str] = field(default_factory=list)  # ok samples outside the test split, sorted
    test_keys: list[str] = field(default_factory=list)


@dataclass
class DataIndex:
    url: str
    shards: list[ShardIndex]

    @property
    def n_train(self) -> int:
        return sum(len(s.train_keys) for s in self.shards)

    @property
    def n_test(self) -> int:
        return sum(len(s.test_keys) for s in self.shards)


def _check_sizes(store: Store, name: str, marker: dict, listed: dict[str, int]) -> None:
    """The listed sizes of the shard's tar and parquet against its marker: a torn write shows here."""
    for suffix in (".tar", ".parquet"):
        file = f"{name}{suffix}"
        want = (marker.get("files") or {}).get(file)
        if file not in listed:
            raise ShardError(f"{store.url_of(file)} is missing although its marker {name}_stats.json exists: "
                             f"a torn write; rerun the job that wrote it")
        if want and listed[file] != want["size"]:
            raise ShardError(f"{store.url_of(file)} does not match its marker {name}_stats.json (size "
                             f"{listed[file]} vs {want['size']}): a torn or foreign write; rerun the job to redo it")


def _ok_keys(store: Store, name: str, marker: dict) -> list[str]:
    data = read_verified(store, name, ".parquet", marker)
    try:
        table = pq.read_table(io.BytesIO(data), columns=["key", "status"])
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{store.url_of(name + '.parquet')} is not an L2I shard index (key, status): {e}") from None
    return sorted(k for k, s in zip(table.column("key").to_pylist(), table.column("status").to_pylist())
                  if s == "ok" and k is not None)


def build_index(url: str, store: Store, cfg: DataConfig) -> DataIndex:
    """Index every complete shard at `store`; clear errors for a missing, empty, raw or torn data set."""
    if not store.exists():
        raise NotFound(f"data directory not found: {url}")
    check_l2i_dir(store, "l2i train")  # raw `l2i download` shards: say to run `l2i synthesize` first
    listed = complete_shards(store)
    if not listed:
        raise InputError(f"no complete L2I shards in {url} (expected NAME.tar, NAME.parquet and NAME_stats.json, "
                         f"the output of `l2i filter` or `l2i synthesize`)")
    shards = []
    for name, files in listed.items():
        marker = read_marker(store, name)
        _check_sizes(store, name, marker, files)
        keys = _ok_keys(store, name, marker)
        if not keys:
            continue
        s = ShardIndex(name)
        for k in keys:
            (s.test_keys if is_test(k, cfg.test_fraction, cfg.split_seed) else s.train_keys).append(k)
        shards.append(s)
    if not shards:
        raise InputError(f"no `ok` samples in the {len(listed)} shard(s) of {url}: every sample was rejected")
    index = DataIndex(url, shards)
    if index.n_train == 0:
        raise InputError(f"all {index.n_test} ok samples of {url} fall in the test split "
                         f"(data.test_fraction={cfg.test_fraction}); lower it or add data")
    log.info("data %s: %d shards, %d train and %d test samples", url, len(shards), index.n_train, index.n_test)
    return index
