"""The job frame's executors: run a worker class over a job's units, in this process or on a Ray Data actor pool.

A worker class takes constructor args and is called with one batch of columns (`__call__(batch: dict of
arrays) -> dict of arrays`); it declares what each copy needs with a classmethod `ask(*args) -> Ask`
(core/gpus.py; default: one GPU per copy when the cluster has or can get one). Units are dicts, one row
each. An optional `expand(unit, **kwargs) -> rows` turns a unit into many rows on the CPU side first (read
and decode a shard, say); the worker then sees batches of those rows, never mixing two units in the local
executor. Both executors yield the worker's output rows as they come (order not kept). See
docs/ARCHITECTURE.md ("The job frame"); synthesize's device actors (engine/runner.py) are the model-stage
form of the Ray one.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from l2i_pipeline.core.gpus import Ask

log = logging.getLogger(__name__)


def worker_ask(worker: type, args: tuple) -> Ask:
    """What one copy of `worker` asks for (its `ask` classmethod, else a GPU when one is to be had)."""
    ask = getattr(worker, "ask", None)
    return ask(*args) if ask is not None else Ask()


def columns(rows: list[dict]) -> dict[str, np.ndarray]:
    """Rows -> a numpy batch as Ray Data hands one to a worker (strings and bytes as object arrays, so no
    trailing NUL byte is dropped)."""
    out = {}
    for k in rows[0]:
        values = [r[k] for r in rows]
        out[k] = np.array(values, dtype=object) if isinstance(values[0], (str, bytes)) else np.array(values)
    return out


def rows_of(batch: dict[str, Any]) -> Iterator[dict]:
    keys = list(batch)
    n = len(batch[keys[0]]) if keys else 0
    for i in range(n):
        yield {k: batch[k][i] for k in keys}


class Executor(Protocol):
    def map(self, worker: type, args: tuple, units: list[dict], batch_size: int = 1,
            expand: Callable[..., Iterator[dict]] | None = None, expand_kwargs: dict | None = None,
            what: str = "units") -> Iterator[dict]:
        """The worker's output rows for every unit (see the module docstring)."""


def _batched(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    buf: list[dict] = []
    for r in rows:
        buf.append(r)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


@dataclass
class LocalExecutor:
    """One worker in this process; batches of `batch_size` rows, one unit's rows at a time."""

    def map(self, worker: type, args: tuple, units: list[dict], batch_size: int = 1,
            expand: Callable[..., Iterator[dict]] | None = None, expand_kwargs: dict | None = None,
            what: str = "units") -> Iterator[dict]:
        if not units:
            return
        instance = worker(*args)
        groups = ([u] for u in units) if expand else iter([units])
        for group in groups:
            rows = expand(group[0], **(expand_kwargs or {})) if expand else iter(group)
            for batch in _batched(rows, batch_size):
                yield from rows_of(instance(columns(batch)))


@dataclass
class RayExecutor:
    """A Ray Data actor pool (core/rayutil.py model_pool): `actors` copies of the worker (None: one per GPU
    share the cluster holds, else 1), each asking what the worker class declares; the expand step runs as
    CPU tasks sized to fit beside the actors."""

    address: str | None = None
    num_cpus: int | None = None
    actors: int | None = None

    def map(self, worker: type, args: tuple, units: list[dict], batch_size: int = 1,
            expand: Callable[..., Iterator[dict]] | None = None, expand_kwargs: dict | None = None,
            what: str = "units") -> Iterator[dict]:
        import ray

        from l2i_pipeline.core.rayutil import (
            Watchdog,
            describe_waiting,
            feeder_cpus,
            init_ray,
            model_pool,
            node_cpus,
        )

        if not units:
            return
        init_ray(self.address, self.num_cpus)
        ray.data.DataContext.get_current().execution_options.preserve_order = False
        ask = worker_ask(worker, args)
        ask = Ask(ask.gpus, self.actors if self.actors is not None else ask.num_actors, ask.device)
        _, pool, plan = model_pool([ask])
        one_per_block = expand is not None or batch_size == 1
        blocks = len(units) if one_per_block else min(len(units), 4 * plan.max_size)
        ds = ray.data.from_items(units, override_num_blocks=max(1, blocks))
        if expand is not None:  # read tasks fit beside the actors even on a 1-CPU node
            ds = ds.flat_map(expand, fn_kwargs=expand_kwargs or {},
                             num_cpus=feeder_cpus(node_cpus(), pool["num_cpus"], plan.size))
        ds = ds.map_batches(worker, fn_constructor_args=args, batch_size=batch_size, batch_format="numpy", **pool)
        with Watchdog(lambda: describe_waiting(lambda: f"running {len(units)} {what}")) as watchdog:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                watchdog.tick()
                yield from rows_of(batch)


def executor_for(runner: str, address: str | None = None, num_cpus: int | None = None,
                 actors: int | None = None) -> Executor:
    """`--runner local|ray` -> its executor."""
    return RayExecutor(address, num_cpus, actors) if runner == "ray" else LocalExecutor()
