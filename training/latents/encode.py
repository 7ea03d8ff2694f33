"""`l2i encode`: every `ok` sample of the L2I shards through the frozen AE once, into latent shards.

One latent shard per L2I shard (training/latents/shards.py), written by a worker: the unit of work and
of resume, like `synthesize`'s shards — a rerun skips shards whose marker exists. A job on the frame
(engine/job.py): runners `local` (one process) and `ray` (a Ray Data actor pool, one AE per actor, a GPU
each when the cluster has them); a shard left unwritten is named and the command exits 1.
The split (train/test) comes from the same key hash training uses, so the LDM never sees a test sample.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from l2i_pipeline.core.gpus import Ask
from l2i_pipeline.core.storage import Store
from l2i_pipeline.engine.executor import executor_for
from l2i_pipeline.engine.job import Job, Work, run_job
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

    @classmethod
    def ask(cls, job: EncodeJob) -> Ask:
        return Ask(None, None, job.device or "auto")  # one GPU per worker when the cluster has or can get one

    def __call__(self, batch: dict) -> dict:
        stats = [self.encode_shard(str(n), json.loads(str(k))) for n, k in zip(batch["shard"], batch["keys"])]
        return {"shard": np.array([s["name"] for s in stats]), "count": np.array([s["count"] for s in stats])}


class EncodeRun(Job):
    """`l2i encode` on the job frame (engine/job.py): a unit is one L2I shard, committed by the worker
    (latent shard, marker last); the run record is OUT/encode.json."""

    command, unit_key, record_name, record_what, record_sort_keys = "encode", "shard", "encode.json", "latents", True

    def __init__(self, job: EncodeJob):
        self.job, self.encoded, self.t0 = job, 0, time.perf_counter()

    def open(self) -> Store:
        return self.job.out

    def check(self) -> None:
        from training.base.config import DataConfig
        from training.data.index import build_index
        from training.latents.codec import check_ae_dir

        job = self.job
        check_ae_dir(job.ae_dir, *(("cat2i", "image") if job.kind == "image" else (job.kind, "layers")))
        cfg = DataConfig(resolution=job.resolution, test_fraction=job.test_fraction, split_seed=job.split_seed)
        self.index = build_index(job.data.url, job.data, cfg)
        self.header = job.header()
        job.out.makedirs()

    def record(self) -> dict:
        return self.header

    def plan(self) -> list[dict]:
        return [{"shard": s.name, "keys": json.dumps(sorted(s.train_keys + s.test_keys))} for s in self.index.shards]

    def committed(self, out: Store, units: list[dict]) -> set[str]:
        self.done = set(complete_shards(out))
        return self.done

    def work(self, todo: list[dict]) -> Work:
        self.t0 = time.perf_counter()
        return Work(EncodeWorker, (self.job,))

    def collect(self, row: dict) -> list[str]:
        self.encoded += int(row["count"])
        log.info("encoded %s", row["shard"])
        return [str(row["shard"])]

    def finish(self, out: Store, summary) -> dict:
        seconds, n = time.perf_counter() - self.t0, self.encoded
        return {**summarize(out, self.header), "encoded_now": n, "skipped_shards": len(self.done),
                "seconds": seconds, "samples_per_s": n / seconds if n and seconds > 0 else None,
                "missing": summary.missing}


def encode(job: EncodeJob, runner: str = "local", workers: int = 0, ray_address: str | None = None,
           num_cpus: int | None = None, lock: bool = True) -> dict:
    """Encode the shards not yet done; returns latents.json plus this run's counts and speed (and `missing`:
    the shards left unwritten). `lock`: hold the output lock of `job.out` (a second concurrent run into it
    is refused)."""
    return run_job(EncodeRun(job), executor_for(runner, ray_address, num_cpus, workers or None), lock).extra
