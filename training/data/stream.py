"""Endless, deterministic, resumable streams of L2I batches, one per (rank, loader worker).

Stream `s` of `S = world_size x num_workers` walks stream-epochs 0, 1, ...: each epoch is a seeded
permutation of the shards, split between streams by shard (`perm[s::S]`) or, with fewer shards than
streams, by sample (every `S`-th key of each shard), and each shard's keys in a seeded order of that epoch
(consecutive LAION rows are correlated, so a batch is not a run of neighbouring keys). A stream's position
is (epoch, offset): offset counts the keys passed, decodable or not, so a resume skips whole shards by
their counts and the rest of a shard's keys without decoding them. Each tar is read whole and checked
against its marker's size and sha256 (`core.shards.iter_output_samples`, as every reader): a torn or
foreign tar is an error, never training data. A sample of a verified shard whose members are missing or
do not decode is skipped and its key recorded (`bad`), never a crash. Each yielded batch carries its
stream's mark {id, epoch, offset, bad} for the loop to put in the checkpoint. The flip is drawn from
(seed, epoch, key), not from a live RNG. The loader workers are forked processes; each opens its own
filesystem (`Store.fs` is per process), since s3fs and gcsfs cannot be used across a fork.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from l2i_pipeline.core.errors import InputError, UserError
from l2i_pipeline.core.shards import iter_output_samples
from l2i_pipeline.core.storage import Store
from l2i_pipeline.formats import mask8
from l2i_pipeline.formats.decode import COLOR, GRAY, decode_image
from l2i_pipeline.formats.names import ALPHA, BG, FG, FG_RGBA, MASK, TXT, member, source_member
from training.base.config import DataConfig
from training.data.index import DataIndex, parse_item

log = logging.getLogger(__name__)
BAD = object()  # a sample that was listed in the index but could not be used


def epoch_plan(index: DataIndex, seed: int, epoch: int, stream: int, n_streams: int) -> list[tuple[str, list[str]]]:
    """[(shard, keys)] that stream `stream` reads in stream-epoch `epoch`, keys in that epoch's order."""
    order = np.random.default_rng([seed, epoch]).permutation(len(index.shards))
    plan = []
    for i in order:
        shard = index.shards[i]
        keys = [shard.train_keys[j] for j in np.random.default_rng([seed, epoch, int(i)]).permutation(
            len(shard.train_keys))]
        plan.append((shard.name, keys))
    if len(plan) >= n_streams:
        return plan[stream::n_streams]
    return [(name, keys[stream::n_streams]) for name, keys in plan]


def _flip(seed: int, epoch: int, key: str) -> bool:
    return hashlib.sha256(f"flip:{seed}:{epoch}:{key}".encode()).digest()[0] & 1 == 1


def square(arr: np.ndarray, resolution: int) -> np.ndarray:
    """The one rule for every layer of every sample: centre-crop to a square (the shorter side), resize to
    `resolution` (area filter down, bilinear up). L2I shards are square already; nothing is squashed."""
    h, w = arr.shape[:2]
    side = min(h, w)
    if h != w:
        y, x = (h - side) // 2, (w - side) // 2
        arr = arr[y:y + side, x:x + side]
    if side != resolution:
        interpolation = cv2.INTER_AREA if side > resolution else cv2.INTER_LINEAR
        arr = cv2.resize(arr, (resolution, resolution), interpolation=interpolation)
    return arr


RGBA_MEMBERS = (FG_RGBA, ALPHA)  # data.fg=rgba: F' and alpha (layers.alpha=matting)


def decode_sample(members: dict[str, bytes], resolution: int, flip: bool, layer: int = 1, fg: str = "rgb",
                  ) -> dict[str, np.ndarray | str]:
    """Tar members -> F, B, I as float32 CHW in [-1, 1], m as 1HW in [0, 1], and the caption.

    `layer` k > 1 (data.view=peel): F_k, m_k, B_k and, as the image, the background they were cut from,
    B_{k-1} (formats/decode.py). fg="rgba" (data.fg): F is the colour of fg_rgba.png (F', halo-free) and m is
    alpha.png, of that layer."""
    rgba = fg == "rgba"
    names = {"image": source_member(layer), "fg": member(layer, FG_RGBA if rgba else FG),
             "bg": member(layer, BG), "mask": member(layer, ALPHA if rgba else MASK)}

    def image(name: str, mode: int) -> np.ndarray:
        arr = square(decode_image(members[name], mode, name), resolution)
        if flip:
            arr = arr[:, ::-1]
        return arr

    out: dict[str, np.ndarray | str] = {}
    for name in ("image", "fg", "bg"):
        rgb = image(names[name], COLOR)  # COLOR drops an alpha channel
        out[name] = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 127.5 - 1.0
    out["mask"] = np.ascontiguousarray(mask8.decode(image(names["mask"], GRAY))[None])
    out["caption"] = members.get(TXT, b"").decode("utf-8", "replace")
    return out


def iter_shard(store: Store, name: str, keys: list[str], resolution: int, flip_seed: tuple[int, int] | None,
               fg: str = "rgb") -> Iterator[tuple[str, object]]:
    """(key, sample or BAD) for each of `keys` (any order, a subset of the shard's), from the verified tar.

    fg="rgba" on a shard made without layers.alpha=matting is an InputError, not a run of bad samples."""
    members = dict(iter_output_samples(store, name))  # raises ShardError for a torn or foreign tar
    for key in keys:
        sample, layer = parse_item(key)  # data.view=peel: KEY#lk is layer k of KEY
        if sample not in members:
            log.warning("skipping sample %s of %s: not in the tar although the index lists it", key, name)
            yield key, BAD
            continue
        missing = [member(layer, m) for m in RGBA_MEMBERS if member(layer, m) not in members[sample]] \
            if fg == "rgba" else []
        if missing:
            raise InputError(f"data.fg=rgba needs shards made with `l2i synthesize --set layers.alpha=matting`; "
                             f"sample {key} of {store.url_of(name + '.tar')} has no {' or '.join(missing)} "
                             "(use data.fg=rgb for these shards)")
        try:
            flip = flip_seed is not None and _flip(flip_seed[0], flip_seed[1], key)
            yield key, decode_sample(members[sample], resolution, flip, layer, fg)
        except (KeyError, ValueError, cv2.error) as e:
            log.warning("skipping sample %s of %s: %s", key, name, e)
            yield key, BAD


class L2IStreams(IterableDataset):
    """One rank's streams; each DataLoader worker serves one of them and yields whole batches."""

    def __init__(self, store: Store, index: DataIndex, cfg: DataConfig, batch_size: int, seed: int,
                 rank: int, world_size: int, positions: dict[str, dict], consumed: int = 0):
        self.store, self.index, self.cfg = store, index, cfg
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.positions, self.consumed = positions, consumed

    def __iter__(self) -> Iterator[dict]:
        if get_worker_info() is None:
            yield from self._batches()
            return
        try:
            yield from self._batches()
        except UserError as e:  # a DataLoader would re-raise it with the worker's traceback as its message
            yield {"_error": (type(e), str(e))}

    def _batches(self) -> Iterator[dict]:
        info = get_worker_info()
        k, n_workers = (info.id, info.num_workers) if info else (0, 1)
        cv2.setNumThreads(1)
        # A DataLoader takes batches from its workers round-robin, starting at worker 0. After `consumed`
        # batches the next one is due from stream consumed % n_workers, so worker 0 serves that stream.
        sid = self.rank * n_workers + (k + self.consumed) % n_workers
        n_streams = self.world_size * n_workers
        pos = self.positions.get(str(sid), {})
        epoch, offset, bad, buf = pos.get("epoch", 0), pos.get("offset", 0), [], []
        while True:
            plan = epoch_plan(self.index, self.seed, epoch, sid, n_streams)
            if not any(keys for _, keys in plan):
                raise InputError(f"loader stream {sid} of {n_streams} has no training samples; use fewer "
                                 f"workers (data.num_workers) or more data")
            seen = 0
            for name, keys in plan:
                if seen + len(keys) <= offset:  # resume: whole shards skipped by their index counts
                    seen += len(keys)
                    continue
                skip = offset - seen if offset > seen else 0
                for key, sample in iter_shard(self.store, name, keys[skip:], self.cfg.resolution,
                                              (self.seed, epoch) if self.cfg.flip else None, self.cfg.fg):
                    offset += 1
                    if sample is BAD:
                        bad.append(key)
                        continue
                    buf.append((key, sample))
                    if len(buf) == self.batch_size:
                        yield collate(buf, {"id": sid, "epoch": epoch, "offset": offset, "bad": bad})
                        buf, bad = [], []
                seen += len(keys)
            epoch, offset = epoch + 1, 0


def _reraise_worker_errors(batches: Iterator[dict]) -> Iterator[dict]:
    """A loader worker's UserError, raised again here with its own one-line message."""
    for batch in batches:
        if "_error" in batch:
            cls, message = batch["_error"]
            raise cls(message)
        yield batch


def collate(items: list[tuple[str, dict]], mark: dict | None = None) -> dict:
    batch = {name: torch.from_numpy(np.stack([s[name] for _, s in items])) for name in ("fg", "bg", "mask", "image")}
    batch["key"] = [k for k, _ in items]
    batch["caption"] = [s["caption"] for _, s in items]
    if mark is not None:
        batch["_stream"] = mark
    return batch


class L2IData:
    """The data source the training loop asks for batches and for its fixed validation samples."""

    def __init__(self, store: Store, index: DataIndex, cfg: DataConfig, batch_size: int, seed: int):
        self.store, self.index, self.cfg, self.batch_size, self.seed = store, index, cfg, batch_size, seed

    def batches(self, rank: int, world_size: int, positions: dict[str, dict], consumed: int = 0) -> Iterator[dict]:
        """This rank's batches from `positions`, after it consumed `consumed` batches (for the round-robin)."""
        ds = L2IStreams(self.store, self.index, self.cfg, self.batch_size, self.seed, rank, world_size, positions,
                        consumed)
        if self.cfg.num_workers == 0:
            return iter(ds)
        return _reraise_worker_errors(iter(DataLoader(ds, batch_size=None, num_workers=self.cfg.num_workers,
                                                      prefetch_factor=2, persistent_workers=False)))

    def validation_batch(self, n: int) -> dict:
        """The first `n` held-out samples by key (training samples when the split is empty), unflipped."""
        pool = "test_keys" if self.index.n_test else "train_keys"
        if pool == "train_keys":
            log.warning("the test split is empty; validation images show training samples")
        items = []
        for shard in self.index.shards:
            keys = getattr(shard, pool)[: n - len(items)]
            items += [(k, s) for k, s in iter_shard(self.store, shard.name, keys, self.cfg.resolution, None,
                                                    self.cfg.fg)
                      if s is not BAD]
            if len(items) >= n:
                break
        if not items:
            raise InputError(f"no decodable samples for validation images in {self.index.url}")
        return collate(items)
