"""Store requests of a run, counted from what each job writes and reads (README: the commit protocol).

- `l2i download` (img2dataset), per raw shard: PUT NNNNN.tar, NNNNN.parquet, NNNNN_stats.json.
- `l2i synthesize`, per output shard: one part PUT per pipeline batch touching the shard (about
  size/batch + 1); the finalize GETs and DELETEs those parts and PUTs NAME.tar, NAME.parquet, the
  marker. The raw parquet is read, and the raw tar streamed, at most once per output shard.
- `l2i score` reads each shard (marker, tar, parquet) and PUTs NAME_scores.parquet; `l2i filter` reads
  shard and scores and PUTs three objects per kept shard.
An object larger than the block is a multipart upload (or ranged reads): one request more per block.
LISTs: the listings a job makes at its start, 1,000 names a page. Per job, not per sample: the lock
(probe: 2 PUT + 1 DELETE; refresh: 1 GET + 1 PUT every 20 s).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

BLOCK = 50 * 2**20  # s3fs/gcsfs default block: multipart upload part and read range
LIST_PAGE = 1000
LOCK_REFRESH_S = 20


@dataclass
class Requests:
    store: str
    job: str
    put: float = 0.0
    get: float = 0.0
    list: float = 0.0
    delete: float = 0.0

    @property
    def total(self) -> float:
        return self.put + self.get + self.list + self.delete


def _blocks(nbytes: float) -> float:
    """Requests for one object of nbytes: 1, plus one per block beyond the first."""
    return max(1.0, math.ceil(nbytes / BLOCK))


def count_requests(inputs: float, downloaded: float, synthesized: float, kept: float, *, raw_image_bytes: float,
                   l2i_sample_bytes: float, raw_shard_size: int, output_shard_size: int,
                   pipeline_batch: int) -> list[Requests]:
    """Requests per store and job for the whole run (divide by the items for a per-million figure)."""
    raw_shards = math.ceil(inputs / raw_shard_size)
    raw_tar = raw_image_bytes * downloaded / max(raw_shards, 1)
    out_shards = math.ceil(downloaded / output_shard_size)  # one output shard per chunk of an input shard
    out_tar = l2i_sample_bytes * synthesized / max(out_shards, 1)
    parts = math.ceil(output_shard_size / pipeline_batch) + 1
    kept_shards = math.ceil(kept / output_shard_size)
    def pages_of(objects: float) -> float:
        return math.ceil(objects / LIST_PAGE)

    pages = pages_of(4 * out_shards)  # tar, parquet, marker, scores per shard
    return [
        Requests("raw", "download", put=raw_shards * (_blocks(raw_tar) + 2), list=pages_of(3 * raw_shards)),
        Requests("raw", "synthesize", get=out_shards * (_blocks(raw_tar) + 2),  # at most: a tar streamed per unit
                 list=pages_of(2 * raw_shards)),
        Requests("L2I(U)", "synthesize", put=out_shards * (parts + _blocks(out_tar) + 2), get=out_shards * parts,
                 delete=out_shards * parts, list=pages),
        Requests("L2I(U)", "score", get=out_shards * (_blocks(out_tar) + 2), put=out_shards, list=pages),
        Requests("L2I(U)", "filter", get=out_shards * (_blocks(out_tar) + 3), list=pages),
        Requests("L2I", "filter", put=kept_shards * (_blocks(out_tar) + 2), list=pages_of(3 * kept_shards)),
    ]


def format_requests(raw_shard_size: int, counts: dict[str, float], kept: float, raw_b: float, l2i_b: float,
                    n: Callable[[float], str]) -> list[str]:
    """The request table: per store and job, per million of the job's items and for the run (`n` formats)."""
    from stages.config import load_config

    cfg = load_config(None, [])
    batch = max(cfg.saliency.batch_size, cfg.inpaint.batch_size)  # the pipeline batch (engine/runner.py)
    reqs = count_requests(counts["inputs"], counts["downloaded"], counts["synthesized"], kept, raw_image_bytes=raw_b,
                          l2i_sample_bytes=l2i_b, raw_shard_size=raw_shard_size,
                          output_shard_size=cfg.output_shard_size, pipeline_batch=batch)
    per_job = {"download": counts["inputs"], "synthesize": counts["downloaded"], "score": counts["synthesized"],
               "filter": counts["synthesized"]}
    out = [f"\nstore requests (raw shards of {raw_shard_size:,} rows, output shards of {cfg.output_shard_size:,}, "
           f"pipeline batch {batch}; per million of the job's items | for this run):",
           f"  {'store':<8}{'job':<12}{'PUT /M':>9}{'GET /M':>9}{'LIST /M':>9}{'DELETE /M':>10}{'all, run':>11}"]
    for r in reqs:
        m = 1e6 / max(per_job[r.job], 1)
        out.append(f"  {r.store:<8}{r.job:<12}{r.put * m:>9,.0f}{r.get * m:>9,.0f}{r.list * m:>9,.1f}"
                   f"{r.delete * m:>10,.0f}{n(r.total):>11}")
    out.append(f"  plus per job: the lock (2 PUT + 1 DELETE probe, {3600 / LOCK_REFRESH_S:.0f} GET + "
               f"{3600 / LOCK_REFRESH_S:.0f} PUT an hour)")
    return out
