"""Run the stages over pending units, on Ray Data or in one process, and write each unit exactly once.

Ray: one read task per input shard -> CPU stages as tasks, model stages as actor pools -> the driver
gathers each unit's samples and writes the shard when the last one arrives. Local: the same stage
objects in a plain loop (debugging, and the benchmark's baseline).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l2i_pipeline.core.config import Config
from l2i_pipeline.core.rayutil import actor_pool_args
from l2i_pipeline.core.reader import read_units
from l2i_pipeline.core.sample import Sample, from_batch, to_batch
from l2i_pipeline.core.shards import Unit, write_output_shard
from stages.base import Stage

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


@dataclass
class Collector:
    """Buffers samples per unit and writes a unit as soon as all of its rows have arrived."""

    out_dir: Path
    units: dict[str, Unit]
    extra: dict[str, Any]
    on_write: Callable[[dict], None] = lambda stats: None
    buffers: dict[str, dict[str, Sample]] = field(default_factory=lambda: defaultdict(dict))
    written: int = 0

    def add(self, samples: Iterable[Sample]) -> None:
        for s in samples:
            buf = self.buffers[s.unit]
            buf[s.key] = s  # a retried task can deliver a sample twice: keyed, it is kept once
            unit = self.units[s.unit]
            if len(buf) == len(unit.rows):
                stats = write_output_shard(self.out_dir, unit.name, list(buf.values()),
                                           {**self.extra, "input_shard": unit.input_name})
                del self.buffers[s.unit]
                self.written += 1
                log.info("wrote %s: %d samples, %s", unit.name, stats["count"], stats["status"])
                self.on_write(stats)

    def unfinished(self) -> list[str]:
        return sorted(self.buffers)


def _by_input(units: list[Unit]) -> dict[str, list[Unit]]:
    groups: dict[str, list[Unit]] = defaultdict(list)
    for u in units:
        groups[u.input_name].append(u)
    return groups


def run_local(cfg: Config, raw_dir: Path, units: list[Unit], collector: Collector) -> None:
    """Each input tar is streamed once; a unit runs through the stages as soon as its last row is read."""
    stages = build_stages(cfg)
    for input_name, group in _by_input(units).items():
        sizes = {u.name: len(u.rows) for u in group}
        pending: dict[str, list[Sample]] = defaultdict(list)
        for sample in read_units(raw_dir, input_name, group):  # tar order: units interleave
            batch = pending[sample.unit]
            batch.append(sample)
            if len(batch) < sizes[sample.unit]:
                continue
            samples = pending.pop(sample.unit)
            for stage in stages:
                bs = stage.resources.batch_size
                samples = [t for i in range(0, len(samples), bs) for t in stage.run(samples[i:i + bs])]
            collector.add(samples)


class _ActorStage:
    """Ray actor around a model stage: the model is loaded once, in __init__ (i.e. setup())."""

    def __init__(self, stage_cls: type, cfg: Config):
        self.stage = stage_cls(cfg)
        self.stage.setup()
        self.stage._ready = True

    def __call__(self, batch: dict) -> dict:
        return self.stage(batch)


def _read_fn(raw_dir: str, units_by_input: dict[str, list[Unit]]) -> Callable[[dict], Iterator[dict]]:
    def read(row: dict) -> Iterator[dict]:
        for s in read_units(raw_dir, row["input"], units_by_input[row["input"]]):
            yield {"sample": to_batch([s])["sample"][0]}
    return read


def run_ray(cfg: Config, raw_dir: Path, units: list[Unit], collector: Collector,
            progress: Callable[[int], None] = lambda n: None) -> None:
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = False
    ctx.enable_progress_bars = log.isEnabledFor(logging.DEBUG)
    resources = ray.cluster_resources()
    if resources.get("CPU", 0) < 8:
        # on a few CPUs, Ray Data's per-operator reservation leaves the fused map stage one task at a time
        ctx.op_resource_reservation_enabled = False
    stages = build_stages(cfg)
    actors = sum(st.resources.num_actors for st in stages)
    groups = _by_input(units)
    ds = ray.data.from_items([{"input": name} for name in groups], override_num_blocks=max(1, len(groups)))
    # each read task emits its input shard unit by unit, so the driver holds ~2 partial units per task
    ds = ds.flat_map(_read_fn(str(raw_dir), dict(groups)), compute=ray.data.TaskPoolStrategy(size=cfg.read_tasks))
    for stage in stages:
        r = stage.resources
        if r.num_actors > 0:
            ds = ds.map_batches(_ActorStage, fn_constructor_args=(type(stage), cfg), batch_size=r.batch_size,
                                batch_format="numpy", zero_copy_batch=True,
                                **actor_pool_args(resources, r.gpus, r.num_actors, actors))
        else:
            ds = ds.map_batches(stage, batch_size=r.batch_size, batch_format="numpy", num_cpus=r.cpus,
                                zero_copy_batch=True)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
        samples = from_batch(batch)
        collector.add(samples)
        progress(len(samples))


def check_backends(cfg: Config) -> None:
    """Fail fast, in the driver, before any work: missing weights, unknown backends."""
    from stages.registry import inpaint_backend, saliency_backend

    saliency_backend(cfg).check()
    inpaint_backend(cfg).check()
    if cfg.score.mask_classifier or cfg.score.inpaint_classifier:
        from stages.score import ScoreStage

        ScoreStage(cfg)  # raises ConfigError for a missing or unreadable checkpoint

