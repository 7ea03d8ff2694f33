"""Endless, deterministic, resumable batches of latents for the LDM (the loop's data-source protocol).

Rank r reads stream-epochs 0, 1, ...: each a seeded permutation of the latent shards, split by rank
(`perm[r::W]`, or by row when there are fewer shards than ranks), each shard's train rows in a seeded
order. A position is (epoch, offset = rows passed), so a resume skips shards by their counts and rows by
index, decoding nothing. Latents are small, so one shard at a time is loaded whole.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from l2i_pipeline.core.storage import Store
from training.latents.shards import LatentShard, load_shard, read_index


class LatentData:
    def __init__(self, store: Store, batch_size: int, seed: int):
        self.store, self.batch_size, self.seed = store, batch_size, seed
        self.summary, self.shards = read_index(store)

    def _plan(self, epoch: int, rank: int, world: int) -> list[tuple[LatentShard, list[int]]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.shards))
        shards = [self.shards[i] for i in order]
        pick = [(s, s.train_rows) for s in shards[rank::world]] if len(shards) >= world else \
            [(s, s.train_rows[rank::world]) for s in shards]
        out = []
        for i, (s, rows) in enumerate(pick):
            perm = np.random.default_rng([self.seed, epoch, rank, i]).permutation(len(rows))
            out.append((s, [rows[j] for j in perm]))
        return out

    def batches(self, rank: int, world_size: int, positions: dict[str, dict], consumed: int = 0) -> Iterator[dict]:
        """`consumed` (batches already taken) is not needed: one stream per rank, its position says it all."""
        sid = f"latents{rank}"
        pos = positions.get(sid, {})
        epoch, offset, buf = pos.get("epoch", 0), pos.get("offset", 0), []
        while True:
            seen = 0
            for shard, rows in self._plan(epoch, rank, world_size):
                if seen + len(rows) <= offset:
                    seen += len(rows)
                    continue
                tensors = load_shard(self.store, shard.name)
                for r in rows[max(0, offset - seen):]:
                    offset += 1
                    buf.append((shard, r, tensors))
                    if len(buf) == self.batch_size:
                        yield self._collate(buf, {"id": sid, "epoch": epoch, "offset": offset, "bad": []})
                        buf = []
                seen += len(rows)
            epoch, offset = epoch + 1, 0

    @staticmethod
    def _collate(items, mark: dict | None = None) -> dict:
        batch = {"key": [s.keys[r] for s, r, _ in items], "caption": [s.captions[r] for s, r, _ in items],
                 "mean": torch.stack([t["mean"][r] for _, r, t in items]),
                 "std": torch.stack([t["std"][r] for _, r, t in items])}
        if mark is not None:
            batch["_stream"] = mark
        return batch

    def validation_batch(self, n: int) -> dict:
        """The first `n` held-out latents (training ones when the test split is empty): their captions are the
        fixed validation prompts."""
        pool = "test_rows" if any(s.test_rows for s in self.shards) else "train_rows"
        items = []
        for s in self.shards:
            rows = getattr(s, pool)[: n - len(items)]
            if rows:
                t = load_shard(self.store, s.name)
                items += [(s, r, t) for r in rows]
            if len(items) >= n:
                break
        return self._collate(items)
