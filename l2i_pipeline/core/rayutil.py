"""Ray helpers shared by every Ray job: joining or starting a cluster, and sizing actor pools."""
from __future__ import annotations

import logging
import os


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


def actor_pool_args(resources: dict, gpus: float, size: int, all_actors: int) -> dict:
    """map_batches arguments for an actor pool of `size`: GPUs only where the cluster has them.

    Without GPUs the actors (`all_actors` of them across the pipeline) must leave CPUs for the tasks that
    feed them: two 1-CPU pools on a 2-CPU machine starve the reader and the pipeline stalls.
    """
    import ray

    args: dict = {"compute": ray.data.ActorPoolStrategy(size=size)}
    if gpus and resources.get("GPU", 0) > 0:
        return {**args, "num_cpus": 1.0, "num_gpus": gpus}
    return {**args, "num_cpus": min(1.0, max(0.1, (resources.get("CPU", 1) - 1) / max(all_actors, 1)))}
