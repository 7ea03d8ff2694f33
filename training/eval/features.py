"""`l2i eval`'s per-image extraction (Inception features, CLIP scores, IOU) as a job on the frame (engine/job.py).

A unit is a run of consecutive keys of one image set (`UNIT_ROWS`, a whole number of batches), committed
into the set's feature cache (eval/cache.py) by the job on the driver once each of its keys has a row, a
recorded reason (an unreadable image) or is absent from its source. The executor (engine/executor.py:
in this process, or a Ray Data actor pool with GPU actors when the cluster has them) reads each unit's
images in its expand step and runs the extractor built once per worker. The eval command holds the output
lock around all of its jobs (core/lock.py `output_lock`), so each runs without its own. An interrupted run
keeps the rows it had (`FeatureCache.keep_part`), so a rerun computes only what is left.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np
from tqdm import tqdm

from l2i_pipeline.core.gpus import Ask
from l2i_pipeline.core.storage import Store
from l2i_pipeline.engine.executor import Executor
from l2i_pipeline.engine.job import Job, Work, run_job
from training.eval.cache import BadImage, FeatureCache, compute_each
from training.eval.sources import ImageSet

log = logging.getLogger(__name__)
UNIT_ROWS = 1024  # keys per unit (rounded up to whole batches)


class Given:
    """A factory that hands back an extractor already built (the in-process executor's worker)."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self) -> Callable:
        return self.fn


class Extract:
    """The worker: builds its extractor once from a picklable factory; one output row per input row (an
    unreadable image: a NaN row and its reason in `bad`; an absent one: `absent`)."""

    def __init__(self, factory: Callable[[], Callable[[list], np.ndarray]], device: str = "auto", actors: int = 1):
        self.fn = factory()

    @classmethod
    def ask(cls, factory, device: str = "auto", actors: int = 1) -> Ask:
        return Ask(None, actors, device)  # one GPU per actor when the cluster has or gets them

    def __call__(self, batch: dict) -> dict:
        keys = [str(k) for k in batch["key"]]
        absent = [bool(a) for a in batch["absent"]]
        items = [(k, d, str(c)) for k, d, c, a in zip(keys, batch["data"], batch["caption"], absent) if not a]
        bad: dict[str, str] = {}
        try:
            good = dict(zip([it[0] for it in items], self.fn(items))) if items else {}
        except BadImage:
            ids, rows = compute_each(self.fn, items, bad)
            good = dict(zip(ids, rows))
        first = next(iter(good.values()), None)
        blank = np.full_like(np.asarray(first), np.nan, dtype=np.float64) if first is not None else np.full(1, np.nan)
        return {"key": keys, "row": [good[k] if k in good else blank for k in keys],
                "bad": [bad.get(k, "") for k in keys], "absent": absent}


def read_unit(unit: dict, read: Callable[[set[str]], Iterator]) -> Iterator[dict]:
    """A unit's rows: its images in the set's order, then a row per key its source did not yield."""
    seen = set()
    for key, data, caption in read(set(unit["keys"])):
        seen.add(key)
        yield {"key": str(key), "data": data, "caption": caption, "absent": False}
    for key in unit["keys"]:
        if key not in seen:
            yield {"key": str(key), "data": b"", "caption": "", "absent": True}


class FeatureJob(Job):
    command, unit_key, progress = "eval", "unit", None

    def __init__(self, cache: FeatureCache, s: ImageSet, factory: Callable, batch_size: int, desc: str,
                 device: str = "auto", actors: int = 1):
        self.cache, self.set, self.factory, self.batch_size, self.desc = cache, s, factory, batch_size, desc
        self.device, self.actors = device, actors
        self.want: dict[str, list[str]] = {}
        self.unit_of: dict[str, str] = {}
        self.got: dict[str, dict[str, np.ndarray]] = {}
        self.bad: dict[str, dict[str, str]] = {}
        self.seen: dict[str, int] = {}
        self.bar = None

    def open(self) -> Store:
        return self.cache.store

    def plan(self) -> list[dict]:
        size = -(-UNIT_ROWS // self.batch_size) * self.batch_size
        keys = self.set.keys
        return [{"unit": f"unit-{i // size:05d}", "keys": keys[i:i + size]} for i in range(0, len(keys), size)]

    def committed(self, out: Store, units: list[dict]) -> set[str]:
        c = self.cache
        return {u["unit"] for u in units if u["unit"] in c.units or all(k in c for k in u["keys"])}

    def work(self, todo: list[dict]) -> Work:
        self.want = {u["unit"]: [k for k in u["keys"] if k not in self.cache] for u in todo}
        self.unit_of = {k: name for name, keys in self.want.items() for k in keys}
        self.got = {name: {} for name in self.want}
        self.bad = {name: {} for name in self.want}
        self.seen = dict.fromkeys(self.want, 0)
        n = len(self.set.keys)
        self.bar = tqdm(total=n, initial=n - len(self.unit_of), desc=self.desc, unit="img", disable=None)
        return Work(Extract, (self.factory, self.device, self.actors), self.batch_size, read_unit,
                    {"read": self.set.read}, units=[{"unit": u, "keys": ks} for u, ks in self.want.items()])

    def collect(self, row: dict) -> list[str]:
        key = str(row["key"])
        name = self.unit_of[key]
        if row["bad"]:
            self.bad[name][key] = str(row["bad"])
        elif not row["absent"]:
            self.got[name][key] = np.asarray(row["row"])
        self.seen[name] += 1
        self.bar.update(1)
        if self.seen[name] < len(self.want[name]):
            return []
        self.cache.commit_unit(name, self.got.pop(name), self.bad.pop(name))
        return [name]

    def keep_unfinished(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.cache.keep_part({k: r for rows in self.got.values() for k, r in rows.items()})


def extract(out: Store, tag: str, s: ImageSet, compute: Callable, factory: Callable, batch_size: int, desc: str,
            executor: Executor, local: bool, device: str = "auto", actors: int = 1
            ) -> tuple[np.ndarray, dict[str, str], list[str]]:
    """The rows of `s` (in its key order; unreadable and absent images left out), {key: why} of the
    unreadable ones and the units left unwritten, from `OUT/features/<tag>-<set fingerprint>`, computing
    what it lacks."""
    cache = FeatureCache(out.child(f"features/{tag}-{s.fingerprint[:12]}"))
    job = FeatureJob(cache, s, Given(compute) if local else factory, batch_size, desc, device, actors)
    try:
        summary = run_job(job, executor, lock=False)  # the eval command holds the lock
    finally:
        job.keep_unfinished()
    bad = {k: cache.bad[k] for k in s.keys if k in cache.bad}
    return (cache.get(s.keys) if len(cache) else np.zeros((0, 1))), bad, summary.missing
