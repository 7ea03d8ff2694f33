"""One plain training loop for every model trained here; what is trained is a *task* object.

The loop owns what every run needs: steps, gradient accumulation, autocast, gradient clipping, the
optimiser steps, NaN/inf stops, metrics, validation images, checkpoints and their exact resume, the data
stream's positions, the progress bar. A task owns its models and losses. The CaT2I-AE is one task
(`training/ae/task.py`); the latent-diffusion UNet is another task in this same loop.

Task protocol (duck-typed):

    name: str                                   export directory under the run dir ("ae", "ldm", ...)
    setup(ctx: Context) -> None                 build models on ctx.device; wrap each trainable module with
                                                ctx.prepare(module) (DDP when distributed)
    optimizers() -> dict[str, Optimizer]        ordered; each has its own loss (a GAN has two)
    modules() -> dict[str, nn.Module]           every module saved in a checkpoint (model, EMA, discriminator)
    step(batch, step) -> StepOutput             forward on one micro-batch: .losses {optimizer name: scalar to
                                                backpropagate into that optimiser's parameters only};
                                                .logs {term: scalar tensor}. An optimiser missing from
                                                .losses is not stepped this step (a GAN before disc_start).
    after_step(step) -> None                    after the optimisers stepped (EMA update)
    state_dict() -> dict / load_state_dict(d)   small JSON state (EMA step count, ...)
    validation_image(batch) -> np.ndarray       uint8 H x W x 3 grid for fixed held-out samples
    export(out_dir: Path) -> None               what downstream loads (rank 0, at every checkpoint and the end)

The data source gives `batches(rank, world_size, positions, consumed)`: an endless iterator of dict
batches (`consumed` = batches this rank already took, step x grad_accum), each with a `_stream` mark
{id, epoch, offset, bad: [keys of unusable samples]}; the loop keeps the latest mark per stream id and
stores them in each checkpoint; and `validation_batch(n)` (fixed held-out samples). Randomness inside a step is
seeded from (train.seed, step, rank), so a resumed run draws exactly what an uninterrupted one would.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from l2i_pipeline.core.errors import UserError
from training.base import checkpoint, rundir
from training.base.config import TrainConfig

log = logging.getLogger(__name__)


class TrainingDiverged(UserError):
    """A loss term became NaN or inf; the message names the step and the term."""


@dataclass
class StepOutput:
    losses: dict[str, torch.Tensor]
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Context:
    """Where a rank runs: device, rank, world size; wraps modules for DDP and reports to Ray."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    report: Callable[[dict], None] | None = None  # ray.train.report on the Ray runner
    # rank 0, after each checkpoint (its dir) and export (its dir) are written locally: a URL run dir
    # uploads and commits them (training/base/runstore.py); the dirs are None when not written this time
    on_checkpoint: Callable[[Path | None, Path | None], None] | None = None
    ddp: list = field(default_factory=list)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def prepare(self, module: nn.Module) -> nn.Module:
        module = module.to(self.device)
        if not self.distributed:
            return module
        if self.device.type == "cuda":  # torch's SyncBatchNorm runs on GPUs only
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        wrapped = DistributedDataParallel(module, device_ids=ids)
        self.ddp.append(wrapped)
        return wrapped

    def no_sync(self, skip: bool) -> contextlib.AbstractContextManager:
        """Skip DDP's gradient all-reduce on all but the last micro-batch of an accumulated step."""
        stack = contextlib.ExitStack()
        if skip:
            for m in self.ddp:
                stack.enter_context(m.no_sync())
        return stack

    def all_gather(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def all_min(self, value: float) -> float:
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        return float(t.item())


def step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in opt.param_groups for p in g["params"] if p.requires_grad]


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _diverged(run_dir: Path, step: int, terms: list[str], base_lr: float) -> None:
    """Stop with what happened and what to do: a lower train.lr on resume, or --init from earlier weights."""
    ckpts = [p for _, p in checkpoint.list_checkpoints(run_dir)]
    if not ckpts:
        raise TrainingDiverged(f"{', '.join(terms)} became NaN/inf at step {step}; training stopped before the "
                               f"optimiser step, no checkpoint written yet: rerun with a lower train.lr (now "
                               f"{base_lr:.3g}), e.g. --set train.lr={base_lr / 2:.3g}")
    earlier = f"; an earlier one: {ckpts[-2]}" if len(ckpts) > 1 else ""
    raise TrainingDiverged(f"{', '.join(terms)} became NaN/inf at step {step}; training stopped before the "
                           f"optimiser step; last good checkpoint: {ckpts[-1]}{earlier}. To go on: rerun the same "
                           f"command with a lower train.lr (now {base_lr:.3g}; e.g. --set train.lr={base_lr / 2:.3g}: "
                           f"it resumes from that checkpoint with the new rate), or start a new --out from an "
                           f"earlier checkpoint's weights with --init CHECKPOINT")


def _bad_keys(position: dict) -> set[str]:
    """The keys a stream found unusable (a sample counts once, however many epochs draw it)."""
    bad = position.get("bad", [])
    return set(bad) if isinstance(bad, list) else set()


def train(task: Any, data: Any, cfg: TrainConfig, run_dir: Path, ctx: Context) -> dict[str, Any]:
    """Train `task` to cfg.train.steps, resuming from the run dir's last checkpoint. Returns a summary."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t = cfg.train
    if t.cpu_threads:
        torch.set_num_threads(t.cpu_threads)
    task.setup(ctx)
    opts = task.optimizers()
    step, positions = 0, {}
    if ctx.is_main:
        checkpoint.remove_partial(run_dir)
    last = checkpoint.latest_checkpoint(run_dir)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=t.precision == "fp16")
    if last is not None:
        # the optimisers' settings (lr, betas, ...) come from this run's config, their state from the checkpoint:
        # a resume may change the settings (run.json's optimiser_history), e.g. a lower train.lr after a NaN
        settings = {n: [{k: v for k, v in g.items() if k != "params"} for g in o.param_groups]
                    for n, o in opts.items()}
        state = checkpoint.load_checkpoint(last, task.modules(), opts, ctx.device)
        for name, opt in opts.items():
            for group, fresh in zip(opt.param_groups, settings[name]):
                group.update(fresh)
        step, positions = state["step"], state["positions"]
        task.load_state_dict(state["task"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        log.info("resuming from %s (step %d)", last, step)
    start_step = step
    if ctx.is_main:
        rundir.truncate_metrics(run_dir, step)
    metrics = rundir.Metrics(run_dir, cfg.log.backend) if ctx.is_main else None
    val_batch = data.validation_batch(cfg.val.num_images) if ctx.is_main else None
    bar = rundir.progress(t.steps, step, enabled=ctx.is_main and cfg.log.progress)
    batches = data.batches(ctx.rank, ctx.world_size, positions, step * t.grad_accum)
    sums: dict[str, float] = defaultdict(float)
    bad_total = len(set().union(*(_bad_keys(p) for p in positions.values())))
    n_logged, samples, t0 = 0, 0, time.perf_counter()
    while step < t.steps:
        torch.manual_seed(step_seed(t.seed, step, ctx.rank))
        for opt in opts.values():
            opt.zero_grad(set_to_none=True)
        stepped: set[str] = set()
        for micro in range(t.grad_accum):
            batch = next(batches)
            mark = batch.pop("_stream")
            positions[str(mark["id"])] = {"epoch": mark["epoch"], "offset": mark["offset"],
                                          "bad": sorted(_bad_keys(positions.get(str(mark["id"]), {})) |
                                                        set(mark["bad"]))}
            bad_total = len(set().union(*(_bad_keys(p) for p in positions.values())))
            samples += len(batch["key"])
            with ctx.no_sync(micro < t.grad_accum - 1), _autocast(ctx.device, t.precision):
                out = task.step(_to_device(batch, ctx.device), step)
            values = {k: float(v.detach()) for k, v in out.logs.items()}
            bad_terms = [k for k, v in values.items() if not math.isfinite(v)]
            bad_terms += [f"loss {k}" for k, v in out.losses.items() if not torch.isfinite(v.detach()).all()]
            if ctx.all_min(0.0 if bad_terms else 1.0) < 1.0:
                _diverged(run_dir, step, bad_terms or ["a term on another rank"], t.lr)
            for k, v in values.items():
                sums[k] += v / t.grad_accum
            items = list(out.losses.items())
            for i, (name, loss) in enumerate(items):
                scaler.scale(loss / t.grad_accum).backward(inputs=_params(opts[name]), retain_graph=i < len(items) - 1)
                stepped.add(name)
        for name, opt in opts.items():
            if name not in stepped:
                continue
            scaler.unscale_(opt)
            params = _params(opt)
            norm = torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm if t.max_grad_norm > 0 else float("inf"))
            if not math.isfinite(float(norm)) and t.precision != "fp16":  # fp16: the scaler skips the step
                _diverged(run_dir, step, [f"grad_norm/{name}"], t.lr)
            sums[f"grad_norm/{name}"] += float(norm)
            scaler.step(opt)
        scaler.update()
        task.after_step(step)
        step += 1
        n_logged += 1
        bar.update(1)
        if step % cfg.log.every == 0 or step == t.steps:
            elapsed = time.perf_counter() - t0
            row = {k: v / n_logged for k, v in sums.items()}
            row.update({f"lr/{n}": o.param_groups[0]["lr"] for n, o in opts.items()})
            row.update(step=step, samples_per_s=samples * ctx.world_size / max(elapsed, 1e-9),
                       bad_samples=bad_total)
            if metrics:
                metrics.write(row)
                bar.set_postfix(samples_s=f"{row['samples_per_s']:.1f}")
                log.info("step %d/%d %s", step, t.steps, " ".join(
                    f"{k}={v:.4g}" for k, v in sorted(row.items()) if k != "step" and isinstance(v, (int, float))))
            if ctx.report:
                ctx.report(row)
            sums.clear()
            n_logged, samples, t0 = 0, 0, time.perf_counter()
        if ctx.is_main and (step % cfg.val.every == 0 or step == t.steps) and val_batch is not None:
            rundir.save_image(run_dir / "val" / f"step_{step:07d}.png",
                              task.validation_image(_to_device(val_batch, ctx.device)))
        if step % cfg.ckpt.every == 0 or step == t.steps:
            all_positions = {}
            for p in ctx.all_gather(positions):
                all_positions.update(p)
            if ctx.is_main:
                state = {"positions": all_positions, "task": task.state_dict(), "scaler": scaler.state_dict(),
                         "seed_rule": "torch.manual_seed(SeedSequence([train.seed, step, rank])) before each step",
                         "world_size": ctx.world_size, "config": cfg.to_dict()}
                saved = checkpoint.save_checkpoint(run_dir, step, task.modules(), opts, state, cfg.ckpt.keep)
                task.export(run_dir / task.name)
                if ctx.on_checkpoint:
                    ctx.on_checkpoint(saved, run_dir / task.name)
    bar.close()
    if hasattr(batches, "close"):
        batches.close()
    if ctx.is_main and not (run_dir / task.name).exists():
        task.export(run_dir / task.name)
        if ctx.on_checkpoint:
            ctx.on_checkpoint(None, run_dir / task.name)
    return {"start_step": start_step, "step": step, "bad_samples": bad_total}
