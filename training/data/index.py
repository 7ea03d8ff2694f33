"""What the training data is, from the shards' small files only: which shards, which keys, which split.

An L2I shard is `NAME.tar` + `NAME.parquet` + `NAME_stats.json`; the stats file (the marker) marks it
complete and vouches for the other two files' sizes and sha256, so only shards that have it are listed
(`core.shards.complete_shards`), a size that disagrees with the marker is refused here from the listing
alone, and each parquet is read verified (`core.shards.read_verified`, as every reader). Keys and counts
come from the parquet indexes (columns key, status), never from reading tars; only the `ok` rows are
samples. The held-out test split is by key hash (`split.py`). Tars are sorted by key (the writer sorts).
Image sizes are not checked here: every sample is centre-cropped to a square and resized when decoded
(`stream.decode_sample`), so shards of any size train together.

With `data.view=peel` every layer of a peeled sample (issue 26, `layers.count` > 1; its depth from the
parquet's `meta` column) is a stream item of its own, `KEY` for layer 1 and `KEY#lk` for layer k, all on
the test side or all on the training side by the sample key; stream offsets count items, so a resume is
as exact as with the paper's view. Samples without a depth (older shards) give layer 1 only.
"""
from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.outputs import check_l2i_dir
from l2i_pipeline.core.shards import ShardError, complete_shards, read_marker, read_verified
from l2i_pipeline.core.storage import Store
from l2i_pipeline.formats.names import PARQUET, TAR
from training.base.config import DataConfig
from training.data.split import is_test

log = logging.getLogger(__name__)
LAYER_MARK = "#l"  # data.view=peel: layer k >= 2 of sample KEY is the stream item KEY#lk
_ITEM = re.compile(r"(.+)#l([2-9])")


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
    for suffix in (TAR, PARQUET):
        file = f"{name}{suffix}"
        want = (marker.get("files") or {}).get(file)
        if file not in listed:
            raise ShardError(f"{store.url_of(file)} is missing although its marker {name}_stats.json exists: "
                             f"a torn write; rerun the job that wrote it")
        if want and listed[file] != want["size"]:
            raise ShardError(f"{store.url_of(file)} does not match its marker {name}_stats.json (size "
                             f"{listed[file]} vs {want['size']}): a torn or foreign write; rerun the job to redo it")


def item(key: str, layer: int) -> str:
    """The stream's name for layer `layer` of sample `key` (data.view=peel): the key itself for layer 1."""
    return key if layer == 1 else f"{key}{LAYER_MARK}{layer}"


def parse_item(name: str) -> tuple[str, int]:
    """(sample key, layer) of a stream item."""
    m = _ITEM.fullmatch(name)
    return (m.group(1), int(m.group(2))) if m else (name, 1)


def _depth(meta: str | None) -> int | None:
    try:
        depth = json.loads(meta or "{}").get("depth")
    except (ValueError, AttributeError):
        return None
    return depth if isinstance(depth, int) and depth >= 1 else None


def _ok_keys(store: Store, name: str, marker: dict, view: str = "paper") -> tuple[list[str], int]:
    """The shard's stream items, sorted, and how many of its samples record a depth (layers.count > 1)."""
    data = read_verified(store, name, PARQUET, marker)
    columns = ["key", "status"] + (["meta"] if view == "peel" else [])
    try:
        table = pq.read_table(io.BytesIO(data), columns=columns)
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{store.url_of(name + PARQUET)} is not an L2I shard index (key, status): {e}") from None
    keys, status = table.column("key").to_pylist(), table.column("status").to_pylist()
    depths = table.column("meta").to_pylist() if view == "peel" else [None] * len(keys)
    items, with_depth = [], 0
    for k, s, meta in zip(keys, status, depths):
        if s != "ok" or k is None:
            continue
        depth = _depth(meta) if view == "peel" else None
        with_depth += depth is not None
        items += [item(k, layer) for layer in range(1, (depth or 1) + 1)]
    return sorted(items), with_depth


def build_index(url: str, store: Store, cfg: DataConfig) -> DataIndex:
    """Index every complete shard at `store`; clear errors for a missing, empty, raw or torn data set."""
    if not store.exists():
        raise NotFound(f"data directory not found: {url}")
    check_l2i_dir(store, "l2i train")  # raw `l2i download` shards: say to run `l2i synthesize` first
    listed = complete_shards(store)
    if not listed:
        raise InputError(f"no complete L2I shards in {url} (expected NAME.tar, NAME.parquet and NAME_stats.json, "
                         f"the output of `l2i filter` or `l2i synthesize`)")
    shards, with_depth = [], 0
    for name, files in listed.items():
        marker = read_marker(store, name)
        _check_sizes(store, name, marker, files)
        keys, n = _ok_keys(store, name, marker, cfg.view)
        with_depth += n
        if not keys:
            continue
        s = ShardIndex(name)
        for k in keys:  # a sample's layers are all on one side of the split
            (s.test_keys if is_test(parse_item(k)[0], cfg.test_fraction, cfg.split_seed) else s.train_keys).append(k)
        shards.append(s)
    if not shards:
        raise InputError(f"no `ok` samples in the {len(listed)} shard(s) of {url}: every sample was rejected")
    if cfg.view == "peel" and not with_depth:
        raise InputError(f"data.view=peel needs shards synthesized with layers.count > 1 (their json records a "
                         f"`depth`); none of the samples in {url} does: train with data.view=paper, or synthesize "
                         f"with --set layers.count=2..4")
    index = DataIndex(url, shards)
    if index.n_train == 0:
        raise InputError(f"all {index.n_test} ok samples of {url} fall in the test split "
                         f"(data.test_fraction={cfg.test_fraction}); lower it or add data")
    log.info("data %s: %d shards, %d train and %d test samples", url, len(shards), index.n_train, index.n_test)
    return index
