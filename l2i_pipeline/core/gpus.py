"""Which GPUs a Ray job asks for: the ones its config implies, whether or not they exist yet.

A KubeRay cluster starts its GPU group at zero pods and submits the job as soon as the head is up; the
autoscaler adds a GPU pod only when something asks for a GPU. So the ask comes from the config, not from
`ray.cluster_resources()` at start:
- `device=cpu` (or a backend that uses no GPU) asks for none;
- `device=cuda[:N]` or an explicit `num_gpus` > 0 always asks (never dropped); on a Ray that has no GPU
  and can never get one, that is a ConfigError before any work rather than actors waiting forever;
- `device=auto` asks when GPUs are reachable: the cluster has some now, the autoscaler's node groups have
  some, or the job joined a cluster that says neither (a GPU node may join later; the job logs that it
  waits). On a private local Ray (no --ray-address, the default on one machine) with no GPU, auto is CPU.
See docs/ARCHITECTURE.md ("GPUs on demand").
"""
from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass

from l2i_pipeline.core.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ask:
    """One model's request: its GPU share per actor (None: what is left of one GPU), pool size (None: one
    actor per GPU share the cluster holds) and device (auto | cpu | cuda[:N])."""
    gpus: float | None = None
    num_actors: int | None = None
    device: str = "auto"

    @property
    def required(self) -> bool:
        return self.device.startswith("cuda") or (self.device != "cpu" and (self.gpus or 0) > 0)


@dataclass(frozen=True)
class Plan:
    gpus: float  # per actor (0: a CPU actor)
    size: int  # actors to start with
    max_size: int  # actors the pool may grow to as GPU nodes join (== size for a fixed pool)


def private_ray() -> bool:
    """True when this driver started its own Ray (nothing else joins it), False when it joined a cluster."""
    try:
        import ray._private.worker as worker

        node = worker._global_node
        return bool(node is not None and node.head)
    except Exception:  # noqa: BLE001 - a private Ray attribute: when it moves, assume a joined cluster
        return False


def autoscaler_gpus() -> float | None:
    """The most GPUs the cluster's autoscaler can bring up (its node groups' GPUs x max pods; inf for an
    unbounded group), or None when the cluster publishes no autoscaler config."""
    try:
        import ray._private.state as state

        config = state.state.get_max_resources_from_cluster_config()
    except Exception:  # noqa: BLE001 - an older/newer Ray without it: unknown
        return None
    if config is None:
        return None
    most = config.get("GPU", 0)
    return math.inf if most >= sys.maxsize else float(most)


def gpu_reach(have: float, private: bool, ceiling: float | None) -> float | None:
    """GPUs a job can get: at least those present now (`have`); the autoscaler's `ceiling` when it publishes
    one; None when the job joined a cluster with no GPU now and no autoscaler config (one may still join)."""
    if ceiling is not None:
        return max(have, ceiling)
    if have or private:
        return have
    return None


def device_plan(have: float, asks: list[Ask], reach: float | None) -> Plan:
    """(GPUs per actor, pool size, most actors) for the actors that hold every model of a job, on a cluster
    with `have` GPUs now that can get `reach` (see gpu_reach and the module docstring). Unset shares split
    what is left of one GPU among the models, so by default each actor holds one whole GPU with them all."""
    want = [a for a in asks if a.device != "cpu"]
    required = [a for a in asks if a.required]
    sizes = [a.num_actors for a in asks if a.num_actors is not None]
    if required and reach == 0:
        names = ", ".join(f"device={a.device}" if a.device.startswith("cuda") else f"num_gpus={a.gpus:g}"
                          for a in required)
        raise ConfigError(f"the job asks for GPUs ({names}) but this Ray has none and cannot get one "
                          "(no GPU node, no autoscaler GPU group); join a cluster with GPUs (--ray-address) "
                          "or set the device to cpu")
    fixed = sum(a.gpus for a in want if a.gpus is not None)
    unset = sum(1 for a in want if a.gpus is None)
    per_actor = fixed + (max(0.0, 1.0 - fixed) if unset else 0.0)
    per_actor = float(math.ceil(per_actor)) if per_actor > 1 else round(per_actor, 4)  # Ray: > 1 must be whole
    if not per_actor or (reach == 0 and not required):
        size = max(sizes) if sizes else 1
        return Plan(0.0, size, size)
    if sizes:
        size = most = max(sizes)
    else:
        size = max(1, int(have / per_actor + 1e-6))
        most = size if reach is None else max(size, int(min(reach, 1e6) / per_actor + 1e-6))
    if have == 0:
        log.warning("the model actors ask for %g GPU(s) each and the cluster has none yet: they wait for a GPU "
                    "node to join (an autoscaler adds one for this demand); set the device to cpu to run on "
                    "CPUs", per_actor)
    elif per_actor * size > have + 1e-6:
        log.warning("the model actors ask for %d x %.2f GPUs and the cluster has %.2f now: some wait for a GPU "
                    "(leave num_gpus / num_actors unset to size them from the cluster)", size, per_actor, have)
    return Plan(per_actor, size, most)


def cluster_plan(asks: list[Ask]) -> tuple[dict, Plan]:
    """The joined Ray's resources now and the plan for `asks` on it (ray.init done)."""
    import ray

    resources = ray.cluster_resources()
    have = float(resources.get("GPU", 0))
    return resources, device_plan(have, asks, gpu_reach(have, private_ray(), autoscaler_gpus()))
