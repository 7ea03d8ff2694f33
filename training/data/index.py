"""What the training data is, from the shards' small files only: which shards, which keys, which split.

An L2I shard is `NAME.tar` + `NAME.parquet` + `NAME_stats.json`; the stats file marks it complete, so only
shards that have it are listed. Keys and counts come from the parquet indexes (columns key, status), never
from reading tars; only the `ok` rows are samples. The held-out test split is by key hash (`split.py`).
Tars are sorted by key (the writer sorts), which lets the stream walk an index list and a tar together.
"""
from __future__ import annotations

import io
import logging
import tarfile
from dataclasses import dataclass, field

import pyarrow.parquet as pq
from PIL import Image

from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.storage import Store
from training.config import DataConfig
from training.data.split import is_test

log = logging.getLogger(__name__)
STATS_SUFFIX = "_stats.json"


@dataclass
class ShardIndex:
    name: str
    train_keys: list[str] = field(default_factory=list)  # ok samples outside the test split, sorted
    test_keys: list[str] = field(default_factory=list)


@dataclass
class DataIndex:
    url: str
    shards: list[ShardIndex]
    size: tuple[int, int] | None = None  # (width, height) of the stored images

    @property
    def n_train(self) -> int:
        return sum(len(s.train_keys) for s in self.shards)

    @property
    def n_test(self) -> int:
        return sum(len(s.test_keys) for s in self.shards)


def list_complete_shards(store: Store) -> list[str]:
    """Shards whose completion marker exists and whose tar and parquet are there too, sorted."""
    names = store.list()
    return sorted(n[: -len(STATS_SUFFIX)] for n in names if n.endswith(STATS_SUFFIX)
                  and f"{n[: -len(STATS_SUFFIX)]}.tar" in names and f"{n[: -len(STATS_SUFFIX)]}.parquet" in names)


def _ok_keys(store: Store, name: str) -> list[str]:
    try:
        table = pq.read_table(io.BytesIO(store.get(f"{name}.parquet")), columns=["key", "status"])
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{store.url_of(name + '.parquet')} is not an L2I shard index (key, status): {e}") from None
    return sorted(k for k, s in zip(table.column("key").to_pylist(), table.column("status").to_pylist())
                  if s == "ok" and k is not None)


def _first_image_size(store: Store, name: str) -> tuple[int, int] | None:
    """The size of the shard's first stored image, read from its header (the tar's first member only)."""
    try:
        with store.open(f"{name}.tar") as f, tarfile.open(fileobj=f, mode="r|") as tf:
            for info in tf:
                if info.isfile() and info.name.endswith((".jpg", ".png")):
                    return Image.open(io.BytesIO(tf.extractfile(info).read())).size
    except (tarfile.TarError, OSError) as e:
        log.warning("cannot read the first image of %s: %s", name, e)
    return None


def build_index(url: str, store: Store, cfg: DataConfig) -> DataIndex:
    """Index every complete shard at `store`; clear errors for a missing, empty or mixed data set."""
    if not store.exists():
        raise NotFound(f"data directory not found: {url}")
    names = list_complete_shards(store)
    if not names:
        raise InputError(f"no complete L2I shards in {url} (expected NAME.tar, NAME.parquet and NAME_stats.json, "
                         f"the output of `l2i filter` or `l2i synthesize`)")
    shards, sizes = [], {}
    for name in names:
        keys = _ok_keys(store, name)
        if not keys:
            continue
        s = ShardIndex(name)
        for k in keys:
            (s.test_keys if is_test(k, cfg.test_fraction, cfg.split_seed) else s.train_keys).append(k)
        shards.append(s)
        size = _first_image_size(store, name)
        if size is not None:
            sizes[name] = size
    if not shards:
        raise InputError(f"no `ok` samples in the {len(names)} shard(s) of {url}: every sample was rejected")
    index = DataIndex(url, shards)
    if index.n_train == 0:
        raise InputError(f"all {index.n_test} ok samples of {url} fall in the test split "
                         f"(data.test_fraction={cfg.test_fraction}); lower it or add data")
    distinct = sorted(set(sizes.values()))
    if len(distinct) > 1:
        example = {sz: next(n for n, s in sizes.items() if s == sz) for sz in distinct}
        raise InputError(f"shards of mixed resolution in {url}: " + ", ".join(
            f"{n} is {w}x{h}" for (w, h), n in example.items()) + "; train on one resolution at a time")
    index.size = distinct[0] if distinct else None
    log.info("data %s: %d shards, %d train and %d test samples, images %s", url, len(shards), index.n_train,
             index.n_test, index.size)
    return index
