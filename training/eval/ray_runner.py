"""`--runner ray`: the same per-image extraction as `cache.fill`, on a Ray Data actor pool (GPU actors when present).

For sets of tens of thousands of images on a cluster. The driver streams the images still to do in chunks
(so memory is bounded by a chunk, and a chunk's results are in the cache before the next starts: resumable
as the local runner), each actor builds its extractor once from a picklable factory.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from tqdm import tqdm

from training.eval.cache import FeatureCache, batched

CHUNK = 2048  # images handed to Ray at a time


class _Extract:
    def __init__(self, factory: Callable[[], Callable[[list], np.ndarray]]):
        self.fn = factory()

    def __call__(self, batch: dict) -> dict:
        items = list(zip(batch["key"], batch["data"], batch["caption"]))
        return {"key": batch["key"], "row": list(self.fn(items))}


def fill_ray(cache: FeatureCache, keys: list[str], read: Callable[[set[str]], Iterator], factory: Callable,
             batch_size: int, desc: str, actors: int = 1, address: str | None = None) -> int:
    import ray

    from l2i_pipeline.core.rayutil import actor_pool_args, init_ray

    init_ray(address)
    pool = actor_pool_args(ray.cluster_resources(), 1.0, actors, actors)
    todo = {k for k in keys if k not in cache}
    done = 0
    with tqdm(total=len(keys), initial=len(keys) - len(todo), desc=f"{desc} (ray)", unit="img", disable=None) as bar:
        try:
            for chunk in batched(read(todo), CHUNK):
                ds = ray.data.from_items([{"key": k, "data": d, "caption": c} for k, d, c in chunk])
                out = ds.map_batches(_Extract, fn_constructor_args=(factory,), batch_size=batch_size,
                                     batch_format="numpy", **pool)
                for b in out.iter_batches(batch_size=batch_size, batch_format="numpy"):
                    ids = [str(k) for k in b["key"]]
                    cache.add(ids, np.stack(b["row"]))
                    done += len(ids)
                    bar.update(len(ids))
        finally:
            cache.flush()
    return done
