"""`--runner ray`: the same per-image extraction as `cache.fill`, on a Ray Data actor pool (GPU actors when present).

For sets of tens of thousands of images on a cluster. The driver streams the images still to do in chunks
(so memory is bounded by a chunk, and a chunk's results are in the cache before the next starts: resumable
as the local runner), each actor builds its extractor once from a picklable factory.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from tqdm import tqdm

from training.eval.cache import BadImage, FeatureCache, batched, compute_each

CHUNK = 2048  # images handed to Ray at a time


class _Extract:
    def __init__(self, factory: Callable[[], Callable[[list], np.ndarray]]):
        self.fn = factory()

    def __call__(self, batch: dict) -> dict:
        """One output row per input; an undecodable image gets a NaN row and its reason in `bad`."""
        items = list(zip(batch["key"], batch["data"], batch["caption"]))
        try:
            return {"key": batch["key"], "row": list(self.fn(items)), "bad": [""] * len(items)}
        except BadImage:
            bad: dict[str, str] = {}
            ids, rows = compute_each(self.fn, items, bad)
            good = dict(zip(ids, rows))
            blank = np.full_like(rows[0], np.nan, dtype=np.float64) if rows else np.full((1,), np.nan)
            return {"key": batch["key"], "row": [good.get(k, blank) for k in batch["key"]],
                    "bad": [bad.get(k, "") for k in batch["key"]]}


def fill_ray(cache: FeatureCache, keys: list[str], read: Callable[[set[str]], Iterator], factory: Callable,
             batch_size: int, desc: str, actors: int = 1, address: str | None = None,
             device: str = "auto") -> dict[str, str]:
    import ray

    from l2i_pipeline.core.gpus import Ask
    from l2i_pipeline.core.rayutil import init_ray, model_pool

    init_ray(address)
    _, pool, _ = model_pool([Ask(None, actors, device)])  # one GPU per actor when the cluster has or gets them
    todo = {k for k in keys if k not in cache}
    bad: dict[str, str] = {}
    with tqdm(total=len(keys), initial=len(keys) - len(todo), desc=f"{desc} (ray)", unit="img", disable=None) as bar:
        try:
            for chunk in batched(read(todo), CHUNK):
                ds = ray.data.from_items([{"key": k, "data": d, "caption": c} for k, d, c in chunk])
                out = ds.map_batches(_Extract, fn_constructor_args=(factory,), batch_size=batch_size,
                                     batch_format="numpy", **pool)
                for b in out.iter_batches(batch_size=batch_size, batch_format="numpy"):
                    ok = [i for i, why in enumerate(b["bad"]) if not why]
                    bad.update((str(b["key"][i]), str(why)) for i, why in enumerate(b["bad"]) if why)
                    if ok:
                        cache.add([str(b["key"][i]) for i in ok], np.stack([b["row"][i] for i in ok]))
                    bar.update(len(b["key"]))
        finally:
            cache.flush()
    return bad
