"""`l2i encode`: every `ok` sample of the L2I shards through the frozen AE once, into latent shards.

One latent shard per L2I shard (training/latents/shards.py), written by a worker: the unit of work and
of resume, like `synthesize`'s shards — a rerun skips shards whose marker exists. Runners: `local` (one
process) and `ray` (a Ray Data actor pool, one AE per actor, a GPU each when the cluster has them).
The split (train/test) comes from the same key hash training uses, so the LDM never sees a test sample.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.core.lock import output_lock
from l2i_pipeline.core.storage import Store
from training.data.split import is_test
from training.latents.shards import complete_shards, summarize, write_shard

log = logging.getLogger(__name__)


@dataclass
class EncodeJob:
    data: Store
    out: Store
    ae_dir: str
    kind: str = "cat2i"  # cat2i | sd_stack | image (codec kind)
    resolution: int = 256
    test_fraction: float = 0.01
    split_seed: int = 0
    batch_size: int = 16
    device: str | None = None

    def header(self) -> dict:
        from training.base.fingerprint import dir_fingerprint
        from training.base.runstore import fetched

        return {"data": self.data.url, "ae": self.ae_dir, "ae_fingerprint": dir_fingerprint(fetched(self.ae_dir)),
                "kind": self.kind, "resolution": self.resolution, "test_fraction": self.test_fraction,
                "split_seed": self.split_seed}


class EncodeWorker:
    """Loads the AE once; encodes whole shards (a Ray actor, or called in-process)."""

    def __init__(self, job: EncodeJob):
        from training.latents.codec import load_ae

        self.job = job
        self.device = job.device or ("cuda" if torch.cuda.is_available() else "cpu")
        kind, target = ("cat2i", "image") if job.kind == "image" else (job.kind, "layers")
        self.ae = load_ae(job.ae_dir, kind=kind, target=target).to(self.device)

    def encode_shard(self, name: str, keys: list[str]) -> dict:
        from training.data.stream import BAD, collate, iter_shard
        from training.latents.codec import posterior

        job, t0 = self.job, time.perf_counter()
        means, stds, kept, captions, bad, buf = [], [], [], [], 0, []

        def flush():
            batch = collate(buf)
            inputs = {k: batch[k].to(self.device) for k in ("fg", "bg", "mask", "image")}
            m, s = posterior(self.ae, inputs)
            means.append(m.float().cpu())
            stds.append(s.float().cpu())
            kept.extend(batch["key"])
            captions.extend(batch["caption"])

        for key, sample in iter_shard(job.data, name, keys, job.resolution, None):
            if sample is BAD:
                bad += 1
                continue
            buf.append((key, sample))
            if len(buf) == job.batch_size:
                flush()
                buf = []
        if buf:
            flush()
        if not kept:
            means, stds = [torch.zeros(0)], [torch.zeros(0)]
        splits = ["test" if is_test(k, job.test_fraction, job.split_seed) else "train" for k in kept]
        seconds = time.perf_counter() - t0
        return write_shard(job.out, name, kept, captions, splits, torch.cat(means), torch.cat(stds),
                           {"bad": bad, "seconds": round(seconds, 3)})

    def __call__(self, batch: dict) -> dict:
        stats = [self.encode_shard(str(n), json.loads(str(k))) for n, k in zip(batch["shard"], batch["keys"])]
        return {"shard": np.array([s["name"] for s in stats]), "count": np.array([s["count"] for s in stats])}


def _check_header(job: EncodeJob, header: dict) -> None:
    if job.out.exists("encode.json"):
        old = json.loads(job.out.get("encode.json"))
        diff = sorted(k for k in header if old.get(k) != header[k])
        if diff:
            raise ConfigError(f"{job.out.url} holds latents encoded with other settings ({', '.join(diff)} differ: "
                              f"see its encode.json); use a new --out")
    else:
        job.out.makedirs()
        job.out.put("encode.json", json.dumps(header, indent=2, sort_keys=True).encode())


def encode(job: EncodeJob, runner: str = "local", workers: int = 0, ray_address: str | None = None,
           num_cpus: int | None = None, lock: bool = True) -> dict:
    """Encode the shards not yet done; returns latents.json plus this run's counts and speed. `lock`: hold
    the output lock of `job.out` (a second concurrent run into it is refused)."""
    from training.base.config import DataConfig
    from training.data.index import build_index
    from training.latents.codec import check_ae_dir

    check_ae_dir(job.ae_dir, *(("cat2i", "image") if job.kind == "image" else (job.kind, "layers")))
    cfg = DataConfig(resolution=job.resolution, test_fraction=job.test_fraction, split_seed=job.split_seed)
    index = build_index(job.data.url, job.data, cfg)
    header = job.header()
    job.out.makedirs()
    with output_lock(job.out, "encode") if lock else contextlib.nullcontext():
        return _encode_pending(job, index, header, runner, workers, ray_address, num_cpus)


def _encode_pending(job: EncodeJob, index, header: dict, runner: str, workers: int, ray_address: str | None,
                    num_cpus: int | None) -> dict:
    _check_header(job, header)
    done = set(complete_shards(job.out))
    todo = [(s.name, sorted(s.train_keys + s.test_keys)) for s in index.shards if s.name not in done]
    log.info("encode: %d shards, %d already done, %d to encode", len(index.shards), len(done), len(todo))
    t0, n = time.perf_counter(), 0
    if todo and runner == "ray":
        import ray

        from l2i_pipeline.core.gpus import Ask
        from l2i_pipeline.core.rayutil import init_ray, model_pool

        init_ray(ray_address, num_cpus)
        _, pool, _ = model_pool([Ask(None, workers or None, job.device or "auto")])  # one GPU per worker if any
        ds = ray.data.from_items([{"shard": name, "keys": json.dumps(keys)} for name, keys in todo],
                                 override_num_blocks=len(todo))
        ds = ds.map_batches(EncodeWorker, fn_constructor_args=(job,), batch_size=1, batch_format="numpy", **pool)
        n = sum(int(r["count"]) for r in ds.iter_rows())
    elif todo:
        worker = EncodeWorker(job)
        for name, keys in todo:
            n += worker.encode_shard(name, keys)["count"]
            log.info("encoded %s", name)
    seconds = time.perf_counter() - t0
    summary = summarize(job.out, header)
    return {**summary, "encoded_now": n, "skipped_shards": len(done), "seconds": seconds,
            "samples_per_s": n / seconds if n and seconds > 0 else None}
