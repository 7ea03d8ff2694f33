"""Ray helpers shared by every Ray job: joining or starting a cluster, and sizing actor pools."""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join `address` (or $RAY_ADDRESS, as inside a submitted job); else start a private local Ray.

    `num_cpus` only applies to a local Ray: passing it while joining a cluster is an error in Ray.
    """
    import ray

    if ray.is_initialized():
        return
    kwargs = {"include_dashboard": False, "log_to_driver": True, "logging_level": logging.WARNING}
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=num_cpus, **kwargs)  # never a stale cluster by accident


def gpu_shares(resources: dict, requests: list[tuple[float | None, int | None]]) -> list[tuple[float, int]]:
    """(num_gpus per actor, pool size) for each model stage, from what was set or else the cluster.

    Defaults: one actor of every model stage per GPU, the stages sharing each GPU in equal fractions, so
    saliency and inpainting run side by side on one device instead of one pool waiting for the other's GPU.
    """
    gpus = resources.get("GPU", 0)
    share = round(1.0 / max(len(requests), 1), 4)
    plan = [(g if g is not None else share, n if n is not None else max(1, int(gpus))) for g, n in requests]
    demand = sum(g * n for g, n in plan)
    if gpus and demand > gpus + 1e-6:
        log.warning("the model stages ask for %.2f GPUs and the cluster has %.2f: some pools will wait for "
                    "others to finish (leave num_gpus unset to share the GPUs)", demand, gpus)
    return plan


def actor_pool_args(resources: dict, gpus: float, size: int, all_actors: int, threads: int = 1) -> dict:
    """map_batches arguments for an actor pool of `size`: GPUs only where the cluster has them.

    The actors (`all_actors` of them across the pipeline) must leave CPUs for the tasks that feed them:
    two 1-CPU pools on a 2-CPU machine starve the reader and the pipeline stalls. A GPU actor mostly waits
    on its device, so it asks for a quarter of its fair share of CPUs (at most one). Four batches are
    queued ahead of each actor, so the next batch has arrived when the device finishes the last one.
    `threads` > 1 runs that many calls at once in each actor: the UDF must then be thread-safe (the
    synthesize runner's is: it unpickles and pickles beside the device, and runs the model under a lock).
    """
    import ray

    pool = {"max_concurrent_calls_per_actor": threads, "enable_true_multi_threading": True} if threads > 1 else {}
    args: dict = {"compute": ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=4, **pool)}
    cpus = resources.get("CPU", 1)
    if gpus and resources.get("GPU", 0) > 0:
        return {**args, "num_cpus": round(min(1.0, max(0.1, cpus / (4 * max(all_actors, 1)))), 2), "num_gpus": gpus}
    return {**args, "num_cpus": min(1.0, max(0.1, (cpus - 1) / max(all_actors, 1)))}
