"""Run a training task in one process (`--runner local`) or on Ray Train (`TorchTrainer`, the default).

Both paths call the same `loop.train`; every check that can fail on the user's input (config, LPIPS file,
data, run dir) runs on the driver before any worker starts. On Ray each worker is a DDP rank (gloo on CPU,
NCCL on GPU) and reports its metrics every `log.every` steps; a failed worker group is restarted up to
`--max-failures` times and resumes from the run dir's last checkpoint, as a rerun of the command does; the
restarts are ours (Ray's own FailureConfig is 0), so a user error (bad data, a NaN: `UserError`, which a
restart would only repeat) ends the run at once with its one line. Ray Train's placement-group cleaner asks
the State API every second, which a Ray without its dashboard (ours) does not serve; its warning is
silenced in the Ray workers (`quiet_ray_train`). The run dir is a local path every worker can reach, or a
URL (training/base/runstore.py): then each rank trains in its own local copy pulled from the store, rank 0
commits every checkpoint and export to it, and no shared filesystem is needed.

What to run comes as a `TrainJob` (plain typed fields; `l2i train` builds one from its flags).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from l2i_pipeline.core.errors import user_error_in
from l2i_pipeline.core.lock import output_lock
from l2i_pipeline.core.outputs import local_output
from l2i_pipeline.core.storage import open_store, split_protocol
from training.base import checkpoint, rundir
from training.base.config import (
    TrainConfig,
    config_from_dict,
    describe_lr,
    load_train_config,
    lr_summary,
    with_storage_options,
)
from training.base.loop import Context, train
from training.base.runstore import RunStore, commit_hook
from training.data.index import build_index
from training.data.stream import L2IData

log = logging.getLogger(__name__)
# seconds before the first restart of a failed worker group, doubled for each next one (10, 20, 40 s): a
# restart at once fails again while the lost node's replacement is still joining
RESTART_BACKOFF_S = float(os.environ.get("L2I_TRAIN_RESTART_BACKOFF_S", "10"))


@dataclass
class TrainJob:
    """One training run: its data, its run dir, its config sources and where it runs."""

    data: str  # L2I shards (or latents, for a task with its own `make_data`): a path or a URL
    out: str  # the run dir: a local path or a URL
    preset: str | None = None  # named defaults applied before `config`
    config: str | None = None  # YAML file
    sets: list[str] = field(default_factory=list)  # KEY=VALUE overrides, applied last
    runner: str = "local"  # local: this process; ray: Ray Train's TorchTrainer
    workers: int = 1  # ray: Ray Train workers (DDP ranks)
    ray_address: str | None = None  # ray: cluster to join (else $RAY_ADDRESS, else a private local Ray)
    num_cpus: int | None = None  # ray: CPUs of the private local Ray (default: all, at least workers + 1)
    max_failures: int = 3  # ray: worker-group restarts from the last checkpoint
    storage_options: str | None = None  # JSON fsspec options for `data` and a URL `out` (data.storage_options)
    lock: bool = True  # hold the run dir's output lock: a second run into it is refused


def pick_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from l2i_pipeline.core.errors import ConfigError

            raise ConfigError("train.device=cuda but no CUDA device is visible")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _data(cfg: TrainConfig, url: str):
    store = open_store(url, cfg.data.storage_options or None)
    return L2IData(store, build_index(url, store, cfg.data), cfg.data, cfg.train.batch_size, cfg.train.seed)


def _checkpoint_step(run_dir: Path) -> int:
    last = checkpoint.latest_checkpoint(run_dir)
    return json.loads((last / "state.json").read_text())["step"] if last else 0


def _summary(run_dir: Path, start_step: int, export: str) -> dict[str, Any]:
    rows = rundir.read_metrics(run_dir)
    return {"start_step": start_step, "step": _checkpoint_step(run_dir),
            "bad_samples": rows[-1].get("bad_samples", 0) if rows else 0, "export": export}


def run_store(job: TrainJob, cfg: TrainConfig) -> RunStore | None:
    """The run dir's store when `job.out` is a URL (file:// and paths stay local run dirs); its fsspec options
    are the job's storage options (data.storage_options)."""
    if split_protocol(str(job.out))[0] == "file":
        return None
    return RunStore(str(job.out), cfg.data.storage_options)


def run_training(task_cls: Any, job: TrainJob) -> dict[str, Any]:
    # optional task hooks: its own defaults (the LDM's optimiser settings) and its own data source (latents)
    base = task_cls.base_config() if hasattr(task_cls, "base_config") else None
    cfg = with_storage_options(load_train_config(job.preset, job.config, job.sets, cfg=base), job.storage_options)
    runs = run_store(job, cfg)
    local = None if runs else local_output(job.out, f"`l2i train {task_cls.name}` --out")  # before any work
    out = runs.store if runs else open_store(str(local))
    out.check_writable()  # one line (missing bucket, no permission, a file in the way) before the lock
    with output_lock(out, f"train {task_cls.name}", enabled=job.lock):
        return _run_locked(task_cls, job, cfg, runs, runs.pull() if runs else local)


def _run_locked(task_cls: Any, job: TrainJob, cfg: TrainConfig, runs: RunStore | None, run_dir: Path) -> dict:
    task_cls.preflight(cfg)
    rundir.check_backend(cfg.log.backend)
    data = task_cls.make_data(cfg, job.data) if hasattr(task_cls, "make_data") else _data(cfg, job.data)
    world_size = 1 if job.runner == "local" else job.workers
    lr = lr_summary(cfg, world_size)
    start = _checkpoint_step(run_dir) if run_dir.is_dir() else 0
    rundir.prepare_run_dir(run_dir, cfg, task_cls.name, job.data, lr=lr, resume_step=start)
    if runs:
        runs.push_file("run.json")
    print(describe_lr(lr), flush=True)
    if job.runner == "local":
        hook = commit_hook(runs, cfg.ckpt.keep) if runs else None
        train(task_cls(cfg), data, cfg, run_dir, Context(pick_device(cfg.train.device), on_checkpoint=hook))
    else:
        run_ray(task_cls, cfg, data, run_dir, job)
        if runs:
            runs.pull()  # what the ranks committed, for the summary
    export = runs.store.url_of(task_cls.name) if runs else str(run_dir / task_cls.name)
    return _summary(run_dir, start, export)


def _ray_worker(config: dict) -> None:
    """One Ray Train worker: a DDP rank running the same loop (torch.distributed is already set up)."""
    import ray.train
    import ray.train.torch

    cfg: TrainConfig = config_from_dict(config["cfg"])
    context = ray.train.get_context()
    device = ray.train.torch.get_device() if torch.cuda.is_available() else torch.device("cpu")
    rank = context.get_world_rank()
    ctx = Context(device, rank, context.get_world_size(), report=ray.train.report)
    run_dir = Path(config["run_dir"])
    if config.get("run_url"):  # no shared filesystem: this rank's own copy, resumed from the store
        runs = RunStore(config["run_url"], config.get("storage_options"), f"rank{rank}")
        run_dir = runs.pull()
        ctx.on_checkpoint = commit_hook(runs, cfg.ckpt.keep) if rank == 0 else None
    torch.set_num_threads(max(1, int(config.get("threads", 1))))  # the loop applies train.cpu_threads if set
    train(config["task_cls"](cfg), config["data"], cfg, run_dir, ctx)


def quiet_ray_train() -> None:
    """Ray worker setup hook: Ray Train's PlacementGroupCleaner warns every second that the State API (served
    by the dashboard, which our Ray does not start) cannot tell whether the controller lives."""
    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


def run_ray(task_cls: Any, cfg: TrainConfig, data: L2IData, run_dir: Path, job: TrainJob) -> None:
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from l2i_pipeline.core.gpus import Ask, cluster_plan
    from l2i_pipeline.core.rayutil import init_ray

    num_cpus = job.num_cpus or max(job.workers + 1, os.cpu_count() or 1)
    init_ray(job.ray_address, num_cpus=None if job.ray_address else num_cpus,
             runtime_env={"worker_process_setup_hook": quiet_ray_train})
    _, plan = cluster_plan([Ask(None, job.workers, cfg.train.device)])  # GPUs asked whether or not they exist yet
    use_gpu = plan.gpus > 0
    per_worker = {"CPU": 1, **({"GPU": 1} if use_gpu else {})}
    runs = run_store(job, cfg)
    config = {"cfg": cfg.to_dict(), "task_cls": task_cls, "data": data, "run_dir": str(run_dir.resolve()),
              "run_url": runs.url if runs else None, "storage_options": runs.store.storage_options if runs else None,
              "threads": max(1, (os.cpu_count() or 1) // max(job.workers, 1))}
    try:
        for attempt in range(job.max_failures + 1):
            trainer = TorchTrainer(
                _ray_worker, train_loop_config=config,
                torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
                scaling_config=ScalingConfig(num_workers=job.workers, use_gpu=use_gpu,
                                             resources_per_worker=per_worker),
                run_config=RunConfig(name=f"l2i-train-{task_cls.name}", storage_path=str((run_dir / "ray").resolve()),
                                     failure_config=FailureConfig(max_failures=0)))
            try:
                trainer.fit()
                return
            except Exception as e:  # noqa: BLE001 - a worker's UserError becomes the CLI's one-line error
                user = user_error_in(e)
                if user is not None:
                    raise type(user)(str(user)) from None  # deterministic: a restart would fail the same way
                if attempt == job.max_failures:
                    raise
                wait = RESTART_BACKOFF_S * 2 ** attempt  # a lost node: give its replacement time to join
                log.warning("the Ray worker group failed (%s); restart %d/%d from the last checkpoint in %.0f s",
                            str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__, attempt + 1,
                            job.max_failures, wait)
                time.sleep(wait)
    finally:
        if not job.ray_address:
            ray.shutdown()
