"""Ray helpers shared by every Ray job: joining or starting a cluster, and sizing actor pools."""
from __future__ import annotations

import logging
import math
import os

log = logging.getLogger(__name__)


def init_ray(address: str | None = None, num_cpus: int | None = None, runtime_env: dict | None = None) -> None:
    """Join `address` (or $RAY_ADDRESS, as inside a submitted job); else start a private local Ray.

    `num_cpus` only applies to a local Ray: passing it while joining a cluster is an error in Ray.
    `runtime_env` is the job's (e.g. a `worker_process_setup_hook`).
    """
    import ray

    if ray.is_initialized():
        return
    kwargs = {"include_dashboard": False, "log_to_driver": True, "logging_level": logging.WARNING}
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=num_cpus, **kwargs)  # never a stale cluster by accident


def device_plan(resources: dict, requests: list[tuple[float | None, int | None]]) -> tuple[float, int]:
    """(num_gpus per actor, pool size) for the actors that hold every model stage of a pipeline.

    `requests` are the model stages' own (num_gpus, num_actors), None where unset. Unset GPU shares split
    what is left of one GPU among those stages, so by default each actor holds one whole GPU with every
    model on it; the pool is the largest num_actors set, else as many actors as the GPUs hold.
    """
    gpus = resources.get("GPU", 0)
    fixed = sum(g for g, _ in requests if g is not None)
    unset = sum(1 for g, _ in requests if g is None)
    per_actor = fixed + (max(0.0, 1.0 - fixed) if unset else 0.0)
    per_actor = float(math.ceil(per_actor)) if per_actor > 1 else round(per_actor, 4)  # Ray: > 1 must be whole
    sizes = [n for _, n in requests if n is not None]
    size = max(sizes) if sizes else max(1, int(gpus / per_actor + 1e-6) if per_actor else 1)
    if gpus and per_actor * size > gpus + 1e-6:
        log.warning("the model actors ask for %d x %.2f GPUs and the cluster has %.2f: some will wait for a "
                    "GPU (leave num_gpus / num_actors unset to size them from the cluster)", size, per_actor, gpus)
    return per_actor, size


def actor_pool_args(resources: dict, gpus: float, size: int, all_actors: int, threads: int = 1) -> dict:
    """map_batches arguments for an actor pool of `size`: GPUs only where the cluster has them.

    The actors (`all_actors` of them across the pipeline) must leave CPUs for the tasks that feed them:
    two 1-CPU pools on a 2-CPU machine starve the reader and the pipeline stalls. A GPU actor mostly waits
    on its device, so it asks for a quarter of its fair share of CPUs (at most one). Two batches per call
    slot (at least four) are queued ahead of each actor, so the next batch has arrived when the device
    finishes the last one.
    `threads` > 1 runs that many calls at once in each actor: the UDF must then be thread-safe (the
    synthesize runner's device actor is: model stages whose backends are not run under a lock).
    """
    import ray

    pool = {"max_concurrent_calls_per_actor": threads, "enable_true_multi_threading": True} if threads > 1 else {}
    queued = max(4, 2 * threads)
    args: dict = {"compute": ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=queued, **pool)}
    cpus = resources.get("CPU", 1)
    if gpus and resources.get("GPU", 0) > 0:
        return {**args, "num_cpus": round(min(1.0, max(0.1, cpus / (4 * max(all_actors, 1)))), 2), "num_gpus": gpus}
    return {**args, "num_cpus": min(1.0, max(0.1, (cpus - 1) / max(all_actors, 1)))}
