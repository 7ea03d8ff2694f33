"""Latent shards: one per L2I shard, `NAME.safetensors` + `NAME.parquet` + `NAME_stats.json` (marker, last).

- `NAME.safetensors`: `mean` and `std` of the AE posterior q(z|x), float32 N x C x h x w (unscaled).
- `NAME.parquet`: one row per latent, in the same order: key, caption, split (train | test).
- `NAME_stats.json`: counts, and sums over the train split's latents (n, sum z, sum z^2 with
  E[z^2] = mean^2 + std^2) from which `latents.json` gets the latent std that sets the LDM's scale; and,
  as every shard kind's marker (core/commit.py), the size and sha256 of the two data files: a shard whose
  files disagree with it is torn (redone by `l2i encode`, never read), and a read checks the digest.
`encode.json` (what they were encoded with) is written before the first shard; `latents.json` after the last.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from l2i_pipeline.core.commit import commit_shard
from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.shards import read_verified, verified_shards
from l2i_pipeline.core.storage import Store
from l2i_pipeline.formats.index import LATENT_SCHEMA
from l2i_pipeline.formats.names import MARKER, PARQUET, SAFETENSORS


def write_shard(out: Store, name: str, keys: list[str], captions: list[str], splits: list[str],
                mean: torch.Tensor, std: torch.Tensor, extra: dict) -> dict:
    """Write the three files of one latent shard, the stats marker last; returns the stats."""
    train = torch.tensor([s == "train" for s in splits], dtype=torch.bool)
    m, s = mean[train].double(), std[train].double()
    stats = {"name": name, "count": len(keys), "train": int(train.sum()), "test": int((~train).sum()),
             "elements": int(m.numel()), "sum": float(m.sum()), "sum_sq": float((m * m + s * s).sum()),
             "latent_shape": list(mean.shape[1:]), **extra}
    tensors = save_tensors({"mean": mean.float().contiguous(), "std": std.float().contiguous()})
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pydict({"key": keys, "caption": captions, "split": splits}, schema=LATENT_SCHEMA), buf)
    return commit_shard(out, name, {SAFETENSORS: tensors, PARQUET: buf.getvalue()}, stats)


def complete_shards(out: Store) -> list[str]:
    """Shards whose marker exists and whose listed files match it (a torn one is left out, to be redone);
    a marker of an older encode, without file records, counts when its tensors exist."""
    names = out.list()
    good, _ = verified_shards(out)
    return sorted(n for n in good if f"{n}{SAFETENSORS}" in names)


def read_stats(out: Store, name: str) -> dict:
    return json.loads(out.get(f"{name}{MARKER}"))


def summarize(out: Store, header: dict) -> dict:
    """latents.json: counts and the latent std over the train split (scale = 1/std), from the markers."""
    stats = [read_stats(out, n) for n in complete_shards(out)]
    n = sum(s["elements"] for s in stats)
    mu = sum(s["sum"] for s in stats) / max(n, 1)
    var = sum(s["sum_sq"] for s in stats) / max(n, 1) - mu * mu
    std = math.sqrt(max(var, 0.0))
    summary = {**header, "shards": len(stats), "train": sum(s["train"] for s in stats),
               "test": sum(s["test"] for s in stats), "bad": sum(s.get("bad", 0) for s in stats),
               "latent_mean": mu, "latent_std": std, "latent_scale": 1.0 / std if std > 0 else 1.0,
               "latent_shape": next((s["latent_shape"] for s in stats if s["count"]), None)}
    data = json.dumps(summary, indent=2, sort_keys=True).encode()
    if not out.exists("latents.json") or out.get("latents.json") != data:  # a rerun with nothing new writes nothing
        out.put("latents.json", data)
    return summary


@dataclass
class LatentShard:
    name: str
    keys: list[str]
    captions: list[str]
    train_rows: list[int]
    test_rows: list[int]


def read_index(out: Store) -> tuple[dict, list[LatentShard]]:
    """(latents.json, shards) of an `l2i encode` output; clear errors for anything else."""
    if not out.exists("latents.json"):
        if not out.exists():
            raise NotFound(f"latent dir not found: {out.url}")
        raise InputError(f"{out.url} has no latents.json: not a finished `l2i encode` output (rerun it)")
    summary = json.loads(out.get("latents.json"))
    shards = []
    for name in complete_shards(out):
        table = pq.read_table(io.BytesIO(read_verified(out, name, PARQUET))).to_pydict()
        split = np.array(table["split"])
        shards.append(LatentShard(name, table["key"], table["caption"], np.flatnonzero(split == "train").tolist(),
                                  np.flatnonzero(split != "train").tolist()))
    if not any(s.train_rows for s in shards):
        raise InputError(f"no training latents in {out.url}")
    return summary, shards


def load_shard(out: Store, name: str) -> dict[str, torch.Tensor]:
    return load_tensors(read_verified(out, name, SAFETENSORS))


def is_latent_dir(out: Store) -> bool:
    return out.exists("encode.json")
