"""The image sets `l2i eval` reads: a sample dir (`l2i sample`), the held-out L2I split (LL2I-E) and raw LAION (LA).

Each set is planned from indexes alone (samples.parquet, the shards' parquet files), so counts, progress bars
and cache keys exist before a single image is decoded; images are then streamed for the keys still to do.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.inputshards import image_member
from l2i_pipeline.core.shards import iter_tar
from l2i_pipeline.core.storage import Store, as_store, open_store
from l2i_pipeline.formats.names import COMPOSITE, JPG, MARKER, MASK, PARQUET, SAMPLES_INDEX, TAR, TXT
from training.eval.cache import BadImage
from training.sampling.markers import read_checked

log = logging.getLogger(__name__)

Item = tuple[str, bytes, str]  # (key, encoded image, caption)


def decode_rgb(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for truncated or non-image bytes
        raise BadImage(f"cannot decode image: {type(e).__name__}: {e}") from None


@dataclass
class ImageSet:
    """A planned set: its keys in order, captions, a fingerprint of what it was planned from, and a reader."""

    name: str
    keys: list[str]
    captions: dict[str, str]
    fingerprint: str
    read: Callable[[set[str]], Iterator[Item]] = field(repr=False)


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------- samples written by `l2i sample`

@dataclass
class SampleDir:
    """An `l2i sample` output (a local path or a storage URL), planned from one listing and its index."""

    store: Store
    given: str  # the dir as the report names it
    ids: list[str]
    prompts: dict[str, str]
    missing: list[str]  # ids listed in samples.parquet whose composite.png is absent
    files: dict[str, int] = field(default_factory=dict, repr=False)  # {name below the dir: size}

    @property
    def where(self) -> str:
        """The dir to fingerprint: a local path with its symlinks resolved, a URL as the store spells it."""
        return os.path.realpath(self.store.root) if self.store.local else self.store.url

    @property
    def name(self) -> str:
        return self.where.rstrip("/").rsplit("/", 1)[-1]

    def composite(self, sid: str) -> bytes:
        """The composite read whole, checked against the sample's marker (sampling/markers.py)."""
        return read_checked(self.store, sid, COMPOSITE)

    def has_mask(self, sid: str) -> bool:
        return f"{sid}/{MASK}" in self.files

    def image_set(self) -> ImageSet:
        def read(todo: set[str]) -> Iterator[Item]:
            for sid in self.ids:
                if sid in todo:
                    yield sid, self.composite(sid), self.prompts[sid]
        sizes = [(sid, self.files[f"{sid}/{COMPOSITE}"]) for sid in self.ids]
        return ImageSet("samples", self.ids, self.prompts, _digest([self.where, sizes]), read)


def read_sample_dir(path: str | os.PathLike, limit: int | None = None,
                    storage_options: dict | str | None = None) -> SampleDir:
    url = os.fspath(path)
    store = open_store(url if "://" in url else os.path.expanduser(url), storage_options)
    root = store.url if "://" in url else str(Path(url))
    files = {} if store.local and not os.path.isdir(store.root) else store.find()
    if not files and not (store.local and os.path.isdir(store.root)):
        raise NotFound(f"sample dir not found: {root}")
    index = f"{root}/{SAMPLES_INDEX}" if "://" in url else str(Path(root) / SAMPLES_INDEX)
    if SAMPLES_INDEX not in files:
        raise InputError(f"{root} has no samples.parquet: expected the output dir of `l2i sample`")
    table = pq.read_table(io.BytesIO(store.get(SAMPLES_INDEX))).to_pylist()
    if not table or "id" not in table[0]:
        raise InputError(f"{index} lists no samples (or has no `id` column)")
    ids, prompts, missing = [], {}, []
    for row in table:
        sid = str(row["id"])
        if f"{sid}/{COMPOSITE}" in files:
            ids.append(sid)
            prompts[sid] = str(row.get("prompt") or "")
        else:
            missing.append(sid)
    if not ids:
        raise InputError(f"{root}: none of the {len(table)} samples has a composite.png "
                         f"(expected {root}/<id>/composite.png from `l2i sample`)")
    if missing:
        log.warning("%d of %d samples have no composite.png and are left out (first: %s)",
                    len(missing), len(table), missing[0])
    if limit is not None:
        ids = ids[:limit]
    return SampleDir(store, root, ids, prompts, missing, files)


# ---------------------------------------------------------------- shards (L2I and raw)

def _tar_members(store: Store, name: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Stream a tar's samples from any store; a damaged tar yields what precedes the damage (iter_tar logs it)."""
    errors: list[str] = []
    yield from iter_tar(store, f"{name}{TAR}", errors)


def _shard_reader(store: Store, by_shard: dict[str, list[str]], member: Callable[[dict], bytes | None],
                  captions: dict[str, str]) -> Callable[[set[str]], Iterator[Item]]:
    def read(todo: set[str]) -> Iterator[Item]:
        for name, keys in by_shard.items():
            wanted = todo.intersection(keys)
            if not wanted:
                continue
            for key, members in _tar_members(store, name):
                data = member(members) if key in wanted else None
                if data:
                    txt = members.get(TXT)
                    yield key, data, txt.decode("utf-8", "replace") if txt else captions.get(key, "")
    return read


def _index(store: Store, name: str, columns: tuple[str, ...]) -> list[dict]:
    """The rows of `NAME.parquet`, only the wanted columns that exist (indexes of millions of rows stay small)."""
    f = pq.ParquetFile(io.BytesIO(store.get(f"{name}{PARQUET}")))
    return f.read(columns=[c for c in columns if c in f.schema_arrow.names]).to_pylist()


def l2i_shards(real: str | Store) -> tuple[Store, list[str]]:
    """The complete L2I shards of `real` (those with their NAME_stats.json marker); a Store keeps its options."""
    store = as_store(real)
    store.check_readable()
    names = sorted(n[: -len(MARKER)] for n in store.list(MARKER))
    if not names:
        raise InputError(f"{store.url} holds no complete L2I shards (no NAME_stats.json): expected `l2i filter` "
                         "or `l2i synthesize` output")
    return store, names


def _l2i_rows(store: Store, names: list[str], keep: Callable[[dict], bool], limit: int
              ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Up to `limit` ok rows that `keep` accepts, shard by shard, read from the indexes only."""
    by_shard: dict[str, list[str]] = {}
    captions: dict[str, str] = {}
    for name in names:
        if len(captions) >= limit:
            break
        for r in _index(store, name, ("key", "status", "caption")):
            if r.get("status") == "ok" and keep(r):
                by_shard.setdefault(name, []).append(r["key"])
                captions[r["key"]] = r.get("caption") or ""
                if len(captions) >= limit:
                    break
    return by_shard, captions


def default_is_test() -> Callable[[str, float, int], bool]:
    from training.data.split import is_test

    return is_test


def ll2ie_set(real: str | Store, test_fraction: float, split_seed: int, limit: int,
              is_test: Callable[[str, float, int], bool] | None = None) -> ImageSet:
    """LL2I-E: the held-out split of the L2I shards (the same hash split training excluded), image I."""
    is_test = is_test or default_is_test()
    store, names = l2i_shards(real)
    by_shard, captions = _l2i_rows(store, names, lambda r: is_test(r["key"], test_fraction, split_seed), limit)
    sizes = store.list(TAR)
    fp = _digest(["ll2ie", store.url, {n: sizes.get(f"{n}{TAR}") for n in names}, test_fraction, split_seed, limit])
    keys = [k for ks in by_shard.values() for k in ks]
    return ImageSet("ll2ie", keys, captions, fp, _shard_reader(store, by_shard, lambda m: m.get(JPG), captions))


def l2i_set(real: str | Store, limit: int) -> ImageSet:
    """Every ok sample of L2I, up to `limit` (Table V's dataset CLIP score), image I."""
    store, names = l2i_shards(real)
    by_shard, captions = _l2i_rows(store, names, lambda r: True, limit)
    fp = _digest(["l2i", store.url, store.list(TAR), limit])
    keys = [k for ks in by_shard.values() for k in ks]
    return ImageSet("l2i", keys, captions, fp, _shard_reader(store, by_shard, lambda m: m.get(JPG), captions))


def _in_l2i(real: str | Store, candidates: dict[str, dict]) -> set[str]:
    """The candidate raw keys whose image is an ok L2I sample: matched by URL (img2dataset keys restart at 0 in
    every download, so equal keys from two downloads are different images), by key when a side has no URL."""
    store, names = l2i_shards(real)
    by_url = {r["url"]: k for k, r in candidates.items() if r.get("url")}
    hit: set[str] = set()
    for name in names:
        for r in _index(store, name, ("key", "status", "url")):
            if r.get("status") != "ok":
                continue
            if r.get("url") and by_url:
                if r["url"] in by_url:
                    hit.add(by_url[r["url"]])
            elif r["key"] in candidates:
                hit.add(r["key"])
    return hit


def la_set(raw: str | Store, real: str | Store | None, limit: int) -> ImageSet:
    """LA: raw LAION(-Aesthetics) images from img2dataset shards, minus those that made it into L2I (`real`)."""
    store = as_store(raw)
    store.check_readable()
    tars = store.list(TAR)
    if not tars:
        raise InputError(f"{store.url} holds no .tar shards: expected `l2i download` (img2dataset) output")
    candidates: dict[str, dict] = {}  # key -> {shard, caption, url}; a few times the limit, then filtered
    for tar in tars:
        name = tar[: -len(TAR)]
        if len(candidates) >= 2 * limit:
            break
        if store.exists(f"{name}{PARQUET}"):
            rows = [r for r in _index(store, name, ("key", "status", "caption", "url"))
                    if r.get("status", "success") == "success"]
        else:
            rows = [{"key": k} for k, m in _tar_members(store, name) if image_member(m)]
        for r in rows:
            candidates.setdefault(str(r["key"]), {**r, "shard": name})
    drop = _in_l2i(real, candidates) if real else set()
    by_shard: dict[str, list[str]] = {}
    captions: dict[str, str] = {}
    for key, r in candidates.items():
        if key not in drop and len(captions) < limit:
            by_shard.setdefault(r["shard"], []).append(key)
            captions[key] = r.get("caption") or ""
    keys = [k for ks in by_shard.values() for k in ks]
    fp = _digest(["la", store.url, tars, real, limit])
    return ImageSet("la", keys, captions, fp, _shard_reader(store, by_shard, image_member, captions))
