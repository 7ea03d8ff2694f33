"""Run the stages over pending units, on Ray Data or in one process; workers write every shard.

Ray: one read task per input shard -> CPU stages as tasks, model stages as actor pools -> the last task
of each batch writes parts to the output store (engine/writer.py) and returns small records; the driver
counts keys per shard and starts a finalize task when a shard is whole. Local: the same stage objects in
one process (a thread per stage, engine/threaded.py) that writes each shard itself (debugging, and
the benchmark's baseline).
"""
from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from l2i_pipeline.core.config import Config
from l2i_pipeline.core.errors import UserError
from l2i_pipeline.core.rayutil import actor_pool_args, gpu_shares
from l2i_pipeline.core.reader import read_units
from l2i_pipeline.core.sample import Sample, from_batch, to_batch
from l2i_pipeline.core.shards import Unit, write_output_shard
from l2i_pipeline.core.storage import Store
from l2i_pipeline.engine.threaded import run_threaded
from l2i_pipeline.engine.tracker import UnitTracker
from l2i_pipeline.engine.writer import PartWriter, finalize_unit
from stages.base import ModelStage, Stage

log = logging.getLogger(__name__)


def build_stages(cfg: Config) -> list[Stage]:
    from stages.decode import DecodeStage
    from stages.encode import EncodeStage
    from stages.inpaint import InpaintStage
    from stages.layers import LayersStage
    from stages.saliency import SaliencyStage

    stages: list[Stage] = [DecodeStage(cfg), SaliencyStage(cfg), LayersStage(cfg), InpaintStage(cfg)]
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

    pending: dict[str, list[Sample]] = defaultdict(list)
    for sample in run_threaded(source(), [(st.resources.batch_size, st.run) for st in stages]):
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


class _ActorStage:
    """Ray actor around a model stage: the model is loaded once, in __init__ (i.e. setup()).

    The backend's own check runs here too, so a node without the weights names the missing file
    instead of dying with a bare actor-creation error. `then`: the CPU stages that follow the model (e.g.
    layers), run here beside the device instead of as tasks of their own (one pickling round less).
    """

    def __init__(self, stage_cls: type, cfg: Config, then: tuple[type, ...] = ()):
        import platform

        try:
            check_backends(cfg)
            self.stage = stage_cls(cfg)
            self.stage.setup()
        except Exception as e:
            raise UserError(f"{stage_cls.__name__} cannot start on node {platform.node()}: {e}") from e
        self.stage._ready = True
        self.then = [cls(cfg) for cls in then]
        self.device = threading.Lock()

    def __call__(self, batch: dict) -> dict:
        """Called from two threads (actor_pool_args' `threads`): while one batch holds the device, the
        next is unpickled and the last goes through the CPU stages and is pickled, so the GPU does not
        wait for the actor's CPU work."""
        samples = from_batch(batch)
        with self.device:
            samples = self.stage.run(samples)
        for stage in self.then:
            samples = stage.run(samples)
        return to_batch(samples)


def _read_fn(raw: Store, units_by_input: dict[str, list[Unit]], head: list[Stage]) -> Callable[[dict], Iterator[dict]]:
    """Read tasks: samples in tar order, through the `head` CPU stages (decode) in batches, in the same task."""
    size = max([st.resources.batch_size for st in head], default=1)

    def rows(samples: list[Sample]) -> Iterator[dict]:
        for st in head:
            samples = st.run(samples)
        for b in to_batch(samples)["sample"]:
            yield {"sample": b}

    def read(row: dict) -> Iterator[dict]:
        buf: list[Sample] = []
        for s in read_units(raw, row["input"], units_by_input[row["input"]]):
            buf.append(s)
            if len(buf) >= size:
                yield from rows(buf)
                buf = []
        if buf:
            yield from rows(buf)
    return read


def _user_error(e: BaseException) -> UserError | None:
    """The UserError inside a Ray error chain (RayTaskError keeps the original as .cause)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, UserError):
            return e
        e = getattr(e, "cause", None) or e.__cause__ or e.__context__
    return None


def run_ray(cfg: Config, raw: Store, out: Store, units: list[Unit], extra: dict[str, Any], on_shard: OnShard,
            progress: Callable[[int], None] = lambda n: None) -> None:
    import ray

    resources = ray.cluster_resources()
    stages = build_stages(cfg)
    models = [st for st in stages if st.resources.num_actors != 0]
    plan = dict(zip(models, gpu_shares(resources, [(st.resources.gpus, st.resources.num_actors) for st in models])))
    actors = sum(n for _, n in plan.values())
    groups = _by_input(units)
    ds = ray.data.from_items([{"input": name} for name in groups], override_num_blocks=max(1, len(groups)))
    # each read task emits its input shard unit by unit, so ~2 units per task are in flight. With actor pools
    # (GPU stages), the CPU stages ride along with the tasks next to them: decode in the read task, layers in
    # the saliency actor, and encode in the writer; each hop saved is a pickling round of every sample's pixels.
    def ride_along(i: int) -> list[Stage]:
        out = []
        while plan and i < len(stages) - 1 and stages[i] not in plan and not isinstance(stages[i], ModelStage):
            out.append(stages[i])
            i += 1
        return out

    head = ride_along(0)
    ds = ds.flat_map(_read_fn(raw, dict(groups), head), compute=ray.data.TaskPoolStrategy(size=cfg.read_tasks))
    i = len(head)
    while i < len(stages) - 1:
        stage, r = stages[i], stages[i].resources
        if stage in plan:
            tail = ride_along(i + 1)
            gpus, size = plan[stage]
            ds = ds.map_batches(_ActorStage, fn_constructor_args=(type(stage), cfg, tuple(type(t) for t in tail)),
                                batch_size=r.batch_size, batch_format="numpy", zero_copy_batch=True,
                                **actor_pool_args(resources, gpus, size, actors, threads=2))
            i += 1 + len(tail)
        else:
            ds = ds.map_batches(stage, batch_size=r.batch_size, batch_format="numpy", num_cpus=r.cpus,
                                zero_copy_batch=True)
            i += 1
    encode = stages[-1]  # a CPU stage (build_stages ends with it): it encodes and writes in one task
    ds = ds.map_batches(PartWriter(out, encode), batch_size=encode.resources.batch_size, batch_format="numpy",
                        num_cpus=encode.resources.cpus)
    ctx = ds.context  # this dataset's own copy: Ray's global DataContext is left alone
    ctx.execution_options.preserve_order = False
    ctx.enable_progress_bars = log.isEnabledFor(logging.DEBUG)
    if resources.get("CPU", 0) < 8:
        # on a few CPUs, Ray Data's per-operator reservation leaves the fused map stage one task at a time
        ctx.op_resource_reservation_enabled = False

    finalize = ray.remote(num_cpus=0.25, max_retries=3)(finalize_unit)
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

    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
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
                    inflight[finalize.remote(out, done.name, done.input_name, tracker.take_parts(done.name),
                                             extra)] = done.name
            if inflight:
                collect(timeout=0)
    except Exception as e:
        user = _user_error(e)
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

