"""Run the stages over pending units, on Ray Data or in one process; workers write every shard.

Ray: one read task per input shard (read + decode) -> device actors, each holding every model stage and
the CPU stages after the first one, which write parts to the output store (engine/writer.py) and return
small records; the driver counts keys per shard and starts a finalize task when a shard is whole. With
CPU backends only, the stages are plain tasks and the last one writes. Local: the same stage objects in
one process (a thread per stage, engine/threaded.py) that writes each shard itself (debugging, and
the benchmark's baseline).
"""
from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

from l2i_pipeline.core.commit import write_output_shard
from l2i_pipeline.core.errors import UserError, user_error_in
from l2i_pipeline.core.gpus import Ask
from l2i_pipeline.core.inputshards import Unit
from l2i_pipeline.core.rayutil import RESERVED_CPUS, Watchdog, describe_waiting, feeder_cpus, model_pool, node_cpus
from l2i_pipeline.core.reader import read_units
from l2i_pipeline.core.sample import Sample, from_batch, to_batch
from l2i_pipeline.core.storage import Store
from l2i_pipeline.engine.threaded import run_threaded
from l2i_pipeline.engine.tracker import UnitTracker
from l2i_pipeline.engine.writer import finalize_unit, records_batch, write_parts
from stages.base import ModelStage, Stage, device_lock
from stages.config import Config

log = logging.getLogger(__name__)


def build_stages(cfg: Config) -> list[Stage]:
    from stages.decode import DecodeStage
    from stages.encode import EncodeStage
    from stages.inpaint import InpaintStage
    from stages.layers import LayersStage
    from stages.saliency import SaliencyStage

    stages: list[Stage] = [DecodeStage(cfg), SaliencyStage(cfg), LayersStage(cfg), InpaintStage(cfg)]
    if cfg.layers.count > 1:  # layers 2..count: saliency and inpainting again on each background (issue 26)
        from stages.peel import PeelStage

        stages.append(PeelStage(cfg))
        stages[-1].attach(stages)
    if cfg.score.mask_classifier or cfg.score.inpaint_classifier:
        from stages.score import ScoreStage

        stages.append(ScoreStage(cfg))
    stages.append(EncodeStage(cfg))
    return stages


OnShard = Callable[[dict], None]  # called in the driver with each committed shard's stats (or a failure)


def _by_input(units: list[Unit]) -> dict[str, list[Unit]]:
    groups: dict[str, list[Unit]] = defaultdict(list)
    for u in units:
        groups[u.input_name].append(u)
    return groups


def run_local(cfg: Config, raw: Store, out: Store, units: list[Unit], extra: dict[str, Any],
              on_shard: OnShard) -> None:
    """One process: each input tar is streamed once, every stage runs in its own thread (engine/threaded.py),
    and a unit is committed here as soon as its last sample has been through the stages."""
    stages = build_stages(cfg)
    sizes = {u.name: u.count for u in units}
    input_of = {u.name: u.input_name for u in units}

    def source() -> Iterator[Sample]:
        for input_name, group in _by_input(units).items():
            yield from read_units(raw, input_name, group)  # tar order: units interleave

    steps = [(st.resources.batch_size, _locked(st), _threads(st)) for st in stages]
    pending: dict[str, list[Sample]] = defaultdict(list)
    for sample in run_threaded(source(), steps):
        done = pending[sample.unit]
        done.append(sample)
        if len(done) == sizes[sample.unit]:
            on_shard(_commit(out, sample.unit, input_of[sample.unit], pending.pop(sample.unit), extra))


def _commit(out: Store, unit: str, input_name: str, samples: list[Sample], extra: dict[str, Any]) -> dict:
    try:
        return write_output_shard(out, unit, samples, {**extra, "input_shard": input_name})
    except Exception as e:  # noqa: BLE001 - the shard stays unmarked, is named in the summary, and the job goes on
        log.error("could not write %s: %s: %s", unit, type(e).__name__, e)
        return {"name": unit, "failed": f"{type(e).__name__}: {e}"}


def _locked(stage: Stage) -> Callable[[list[Sample]], list[Sample]]:
    """stage.run under its backend's device lock (shared with the peel stage, which calls the same backends)."""
    def run(samples: list[Sample]) -> list[Sample]:
        with device_lock(stage):
            return stage.run(samples)
    return run


def _threads(stage: Stage) -> int:
    """Two batches at once in a model stage whose backend guards its own device (one holds the device while
    the other's CPU pre/post work runs); one elsewhere."""
    return 2 if isinstance(stage, ModelStage) and stage.thread_safe else 1


class Chain:
    """Stages in order over a batch, then the part writer; returns only the part records.

    What a Ray task (CPU backends) or a device actor runs. `locks`: stage id -> the lock that serialises
    that stage when several calls run at once in one actor.
    """

    def __init__(self, stages: list[Stage], out: Store, locks: dict[int, threading.Lock] | None = None):
        self.stages, self.out, self.locks = stages, out, locks or {}

    def __call__(self, batch: dict) -> dict:
        samples = from_batch(batch)
        for stage in self.stages:
            with self.locks.get(id(stage), nullcontext()):
                samples = stage.run_all(samples)
        return records_batch(write_parts(self.out, samples))


class DeviceActor(Chain):
    """Ray actor holding the pipeline from its first model stage on: models (loaded once, in __init__,
    by stage.start()), the CPU stages between and after them, and the part writer.

    Why one actor: after inpainting a 512 px sample carries ~5 MB of arrays, and each hop between Ray
    processes copies them about five times (pickle, Arrow block, object store, back), which costs more CPU
    than the stages themselves. Here only decoded images come in and only part records leave. Calls run
    THREADS at a time: while one batch holds the device, another is in the other model or in
    encode/write; a backend that does not guard its own device section (`thread_safe`) gets a lock.
    The backends' checks run here too, so a node without the weights names the missing file instead of
    dying with a bare actor-creation error.
    """

    THREADS = 3

    def __init__(self, cfg: Config, stage_classes: tuple[type, ...], out: Store):
        import platform

        stages: list[Stage] = []
        for cls in stage_classes:
            try:
                stage = cls(cfg)
                if isinstance(stage, ModelStage):
                    stage.backend.check()
                if hasattr(stage, "attach"):  # the peel stage shares the models loaded here (stages/peel.py)
                    stage.attach(stages)
                stage.start()
            except Exception as e:
                raise UserError(f"{cls.__name__} cannot start on node {platform.node()}: {e}") from e
            stages.append(stage)
        super().__init__(stages, out, {id(st): device_lock(st) for st in stages
                                       if isinstance(st, ModelStage) and not st.thread_safe})


def _read_fn(raw: Store, units_by_input: dict[str, list[Unit]], head: list[Stage],
             size: int) -> Callable[[dict], Iterator[dict]]:
    """Read tasks: samples in tar order, through the `head` CPU stages (decode), one row per batch of `size`."""

    def row(samples: list[Sample]) -> dict:
        for st in head:
            samples = st.run_all(samples)
        return {"samples": to_batch(samples)["samples"][0]}

    def read(row_in: dict) -> Iterator[dict]:
        buf: list[Sample] = []
        for s in read_units(raw, row_in["input"], units_by_input[row_in["input"]]):
            buf.append(s)
            if len(buf) >= size:
                yield row(buf)
                buf = []
        if buf:
            yield row(buf)
    return read


def run_ray(cfg: Config, raw: Store, out: Store, units: list[Unit], extra: dict[str, Any], on_shard: OnShard,
            progress: Callable[[int], None] = lambda n: None) -> None:
    import ray

    resources = ray.cluster_resources()
    stages = build_stages(cfg)
    groups = _by_input(units)
    ds = ray.data.from_items([{"input": name} for name in groups], override_num_blocks=max(1, len(groups)))
    first = next((i for i, st in enumerate(stages) if st.resources.num_actors != 0), None)
    if first is not None:  # read + decode tasks -> [CPU model stages as tasks] -> device actors, which write
        models = [st for st in stages[first:] if st.resources.num_actors != 0]
        resources, pool, plan = model_pool([Ask(st.resources.gpus, st.resources.num_actors, st.resources.device)
                                            for st in models], threads=DeviceActor.THREADS)
        size = plan.size
        read = ray.data.TaskPoolStrategy(size=cfg.read_tasks or max(4, 2 * size))  # ~2 units per task in flight
        batch = max(st.resources.batch_size for st in models)
        head = 0
        while head < first and not isinstance(stages[head], ModelStage):
            head += 1  # decode rides in the read task; a CPU model (classical saliency) scales as its own tasks
        # under a CPU each on a small node, so the actors, these tasks and finalize all fit: it always progresses
        task_cpus = feeder_cpus(node_cpus(), pool["num_cpus"], size, kinds=1 + first - head)
        ds = ds.flat_map(_read_fn(raw, dict(groups), stages[:head], batch), compute=read, num_cpus=task_cpus)
        for stage in stages[head:first]:
            ds = ds.map_batches(stage, batch_size=1, batch_format="numpy",
                                num_cpus=min(stage.resources.cpus, task_cpus))
        ds = ds.map_batches(DeviceActor, fn_constructor_args=(cfg, tuple(type(st) for st in stages[first:]), out),
                            batch_size=1, batch_format="numpy", zero_copy_batch=True, **pool)
    else:  # CPU backends only: read tasks -> tasks running every stage and the writer
        task_cpus = feeder_cpus(node_cpus(), kinds=2)  # a read and a Chain task at once on the smallest node
        read = ray.data.TaskPoolStrategy(size=cfg.read_tasks or 4)
        batch = max(st.resources.batch_size for st in stages)
        ds = ds.flat_map(_read_fn(raw, dict(groups), [], batch), compute=read, num_cpus=task_cpus)
        ds = ds.map_batches(Chain(stages, out), batch_size=1, batch_format="numpy", num_cpus=task_cpus)
    ctx = ds.context  # this dataset's own copy: Ray's global DataContext is left alone
    ctx.execution_options.preserve_order = False
    ctx.enable_progress_bars = log.isEnabledFor(logging.DEBUG)
    # a block per row, i.e. per batch (Ray's default, 128 MiB, holds a read task's rows back until several
    # batches are decoded, and hands them to one actor call after another): batches and records flow at once
    ctx.target_max_block_size = 1 << 20
    if resources.get("CPU", 0) < 8:
        # on a few CPUs, Ray Data's per-operator reservation leaves the fused map stage one task at a time
        ctx.op_resource_reservation_enabled = False

    finalize = ray.remote(num_cpus=RESERVED_CPUS, max_retries=3)(finalize_unit)
    tracker = UnitTracker({u.name: u for u in units})
    inflight: dict[Any, str] = {}

    def collect(timeout: float | None) -> None:
        ready, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=timeout)
        for ref in ready:
            name = inflight.pop(ref)
            try:
                on_shard(ray.get(ref))
            except Exception as e:  # noqa: BLE001 - the shard stays unmarked and is named in the summary
                log.error("could not write %s: %s", name, e)
                on_shard({"name": name, "failed": f"{type(e).__name__}: {e}"})

    committed: set[str] = set()  # the shards whose parts are all written (finalize started)

    def waiting() -> str:
        return (f"{len(units) - len(committed)} of {len(units)} shards of {out.url} still have parts to write, "
                f"{len(inflight)} being finalized")

    try:
        with Watchdog(lambda: describe_waiting(waiting)) as watchdog:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
                watchdog.tick()
                for unit, part, keys, error in zip(batch["unit"], batch["part"], batch["keys"], batch["error"]):
                    keys = json.loads(keys)
                    progress(len(keys))
                    if error:
                        if tracker.fail(unit):
                            log.error("could not write a part of %s: %s", unit, error)
                            on_shard({"name": unit, "failed": error})
                        continue
                    done = tracker.add(unit, part, keys)
                    if done is not None:
                        committed.add(done.name)
                        inflight[finalize.remote(out, done.name, done.input_name, tracker.take_parts(done.name),
                                                 extra)] = done.name
                if inflight:
                    collect(timeout=0)
    except Exception as e:
        user = user_error_in(e)
        if user is not None:
            raise user from None
        raise
    finally:
        if inflight:
            collect(timeout=None)


def check_backends(cfg: Config) -> None:
    """Fail fast, in the driver, before any work: missing weights, unknown backends."""
    from stages.registry import inpaint_backend, saliency_backend

    saliency_backend(cfg).check()
    inpaint_backend(cfg).check()
    if cfg.score.mask_classifier or cfg.score.inpaint_classifier:
        from stages.score import ScoreStage

        ScoreStage(cfg)  # raises ConfigError for a missing or unreadable checkpoint

