"""Ray helpers shared by every Ray job: joining or starting a cluster, sizing actor pools and the tasks that
feed them, and a watchdog that says what a stalled job waits for."""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable

from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.core.gpus import Ask, Plan, cluster_plan

log = logging.getLogger(__name__)

RESERVED_CPUS = 0.25  # left free on every node for the small driver-side tasks (finalize, sidecars)
MIN_TASK_CPUS = 0.1
WATCHDOG_S = 300.0  # no output for this long: say what the job waits for ($L2I_WATCHDOG_S overrides)


# Lines Ray prints on every successful run that ask nothing of the user (shown again with -v)
QUIET = {
    "ray._private.authentication.authentication_token_setup": "Token authentication is enabled",  # a default
    "ray.data._internal.progress": "Progress bars disabled",  # we disable them on purpose (tqdm instead)
}


class _Drop(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_ray() -> None:
    """Ray's routine lines off a successful run: Ray Data's INFO (execution plan, "finished"), the notices
    in QUIET and a concurrency hint about the small jobs; warnings and errors stay. Not with -v (DEBUG)."""
    import warnings

    if logging.getLogger().isEnabledFor(logging.DEBUG):
        return
    import ray.data  # noqa: F401 - configures its loggers on import: set the level after it
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    for name, text in QUIET.items():
        logging.getLogger(name).addFilter(_Drop(text))
    warnings.filterwarnings("ignore", message="The maximum number of concurrent tasks for", category=UserWarning)


def init_ray(address: str | None = None, num_cpus: int | None = None, runtime_env: dict | None = None) -> None:
    """Join `address` (or $RAY_ADDRESS, as inside a submitted job); else start a private local Ray.

    `num_cpus` only applies to a local Ray: passing it while joining a cluster is an error in Ray.
    `runtime_env` is the job's (e.g. a `worker_process_setup_hook`).
    """
    import ray

    if ray.is_initialized():
        return
    quiet_ray()
    kwargs = {"include_dashboard": False, "log_to_driver": True, "logging_level": logging.WARNING}
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=num_cpus, **kwargs)  # never a stale cluster by accident


def actor_pool_args(resources: dict, plan: Plan, all_actors: int, threads: int = 1) -> dict:
    """map_batches arguments for the actor pool of `plan` (core/gpus.py: its GPUs are asked for whether or not
    the cluster has them yet; a pool whose max_size exceeds its size grows as GPU nodes join).

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
    sizes = {"size": plan.size} if plan.max_size <= plan.size else {"min_size": plan.size, "max_size": plan.max_size}
    args: dict = {"compute": ray.data.ActorPoolStrategy(**sizes, max_tasks_in_flight_per_actor=queued, **pool)}
    cpus = resources.get("CPU", 1)
    if plan.gpus:
        return {**args, "num_cpus": round(min(1.0, max(0.1, cpus / (4 * max(all_actors, 1)))), 2),
                "num_gpus": plan.gpus}
    return {**args, "num_cpus": min(1.0, max(0.1, (cpus - 1) / max(all_actors, 1)))}


def model_pool(asks: list[Ask], threads: int = 1) -> tuple[dict, dict, Plan]:
    """For a job whose actors hold `asks`' models (ray.init done): Ray's resources now, the map_batches
    arguments of its actor pool and the GPU plan behind them."""
    resources, plan = cluster_plan(asks)
    return resources, actor_pool_args(resources, plan, plan.size, threads), plan


def node_cpus() -> list[float]:
    """CPUs of each alive node of the joined cluster (nodes without CPUs left out)."""
    import ray

    return [n["Resources"]["CPU"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]


def feeder_cpus(nodes: list[float], actor_cpus: float = 0.0, size: int = 0, kinds: int = 1) -> float:
    """CPUs per task that feeds an actor pool of `size` actors asking `actor_cpus` each (`kinds`: how many
    kinds of task must run at once, e.g. read and a CPU stage).

    One where the smallest node has a whole CPU per kind beside its share of the actors and RESERVED_CPUS,
    else an equal share of what is left there: a 1-CPU node runs an actor, a task of each kind and a
    finalize task at once, so the pipeline always makes progress (a 1-CPU read task beside an actor's
    0.1 CPU would never start). Where not even MIN_TASK_CPUS is left, a ConfigError says so before any work.
    """
    if not nodes:
        raise ConfigError("the Ray cluster has no node with CPUs; the pipeline's read tasks need some")
    smallest = min(nodes)
    left = smallest - actor_cpus * math.ceil(size / len(nodes)) - RESERVED_CPUS
    if left >= kinds:
        return 1.0
    if left / kinds < MIN_TASK_CPUS:
        raise ConfigError(f"{size} actor(s) asking {actor_cpus:g} CPU each leave {max(left, 0):.2f} of a "
                          f"{smallest:g}-CPU node for the tasks that feed them (at least "
                          f"{kinds * MIN_TASK_CPUS + RESERVED_CPUS:g} needed); give fewer actors or more CPUs")
    return math.floor(100 * left / kinds) / 100


def describe_waiting(pending: Callable[[], str]) -> str:
    """What a stalled Ray job waits for, in words: its own pending work and Ray's free resources."""
    import ray

    total, free = ray.cluster_resources(), ray.available_resources()
    res = ", ".join(f"{k} {free.get(k, 0):g} of {total[k]:g} free" for k in ("CPU", "GPU") if k in total)
    return (f"{pending()}; Ray: {res} (a task or actor may wait for resources nothing frees: "
            "`ray status` shows the pending demands)")


class Watchdog:
    """Logs a warning each `period` seconds without a `tick()`, naming what the job waits for (`what()`).

    A job that makes no progress says so instead of sitting silent; use as a context manager.
    """

    def __init__(self, what: Callable[[], str], period: float | None = None):
        self.what = what
        self.period = float(os.environ.get("L2I_WATCHDOG_S", WATCHDOG_S)) if period is None else period
        self.last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="l2i-watchdog", daemon=True)

    def tick(self) -> None:
        self.last = time.monotonic()

    def _watch(self) -> None:
        warned = self.last
        while not self._stop.wait(min(self.period, 5.0)):
            idle = time.monotonic() - max(self.last, warned)
            if idle >= self.period:
                try:
                    what = self.what()
                except Exception as e:  # noqa: BLE001 - the warning itself must never fail the job
                    what = f"(could not say: {type(e).__name__}: {e})"
                log.warning("no progress for %.0f s: %s", time.monotonic() - self.last, what)
                warned = time.monotonic()

    def __enter__(self) -> Watchdog:
        self.tick()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
