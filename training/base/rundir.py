"""The run directory: `run.json` (what the run is), `metrics.jsonl`, validation PNGs, the progress bar.

`run.json` holds the resolved config, package versions and the learning rate actually used (`lr`: base,
scaling, effective). A rerun into the same directory resumes, and is refused when an output-affecting key
differs (the keys are named); `config.RUNTIME_KEYS` may change, and so may the optimiser settings
(`config.OPTIMISER_KEYS`: train.lr, ...), each change appended to `optimiser_history` with the step it
applies from (a world size that changes the effective rate is recorded the same way).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from l2i_pipeline.core.errors import ConfigError, StorageError
from l2i_pipeline.core.provenance import differing_keys, output_affecting, versions, with_new_keys
from training.base.config import OPTIMISER_KEYS, RUNTIME_KEYS, TrainConfig

PACKAGES = ["l2i-pipeline", "torch", "ray", "diffusers", "safetensors", "lpips", "numpy", "pillow"]


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def prepare_run_dir(run_dir: Path, cfg: TrainConfig, task: str, data_url: str, lr: dict[str, Any] | None = None,
                    resume_step: int = 0) -> dict[str, Any]:
    """Create or reopen the run dir; write run.json on a fresh start, refuse an incompatible rerun, record
    changed optimiser settings (and the effective lr) from `resume_step` on."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StorageError(f"cannot write to run directory {run_dir}: {e}") from None
    config = cfg.to_dict()
    if config["data"].get("storage_options"):  # credentials may be in them: never recorded
        config["data"]["storage_options"] = "(given, not recorded)"
    new = {"task": task, "data": data_url, "config": config, "versions": versions(PACKAGES), "lr": lr}
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    path = run_dir / "run.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("task") != task:
            raise ConfigError(f"{run_dir} holds a {old.get('task')!r} run, not {task!r}; use another --out")
        fixed = RUNTIME_KEYS | OPTIMISER_KEYS
        recorded = with_new_keys(old.get("config", {}), type(cfg)().to_dict())  # a run older than a key
        diff = differing_keys(output_affecting(recorded, fixed), output_affecting(new["config"], fixed))
        if diff:
            raise ConfigError(f"{run_dir} was started with a different config; differing keys: {', '.join(diff)} "
                              f"(see {path}); use another --out or the same settings (optimiser settings such "
                              f"as train.lr may change on resume)")
        changed = [k for k in differing_keys(old.get("config", {}), new["config"])
                   if k.rsplit(".", 1)[-1] in OPTIMISER_KEYS]
        new["started"] = old.get("started")
        new["resumed"] = old.get("resumed", []) + [now]
        new["optimiser_history"] = old.get("optimiser_history", [])
        old_effective = (old.get("lr") or {}).get("effective")
        if changed or (lr and old_effective != lr.get("effective")):
            new["optimiser_history"].append({
                "from_step": resume_step, "time": now, "lr": lr,
                "changed": {k: [_get(old["config"], k), _get(new["config"], k)] for k in changed}})
    else:
        new["started"] = now
        new["optimiser_history"] = [{"from_step": 0, "time": now, "lr": lr, "changed": {}}]
    tmp = path.with_name(".run.json.tmp")
    tmp.write_text(json.dumps(new, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return new


def check_backend(backend: str) -> None:
    """log.backend=tensorboard needs the tensorboard package: say so before any work."""
    if backend == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError("log.backend=tensorboard needs the tensorboard package (pip install tensorboard); "
                              "metrics.jsonl is always written") from None


class Metrics:
    """One JSON line per log step, always; TensorBoard scalars too with log.backend=tensorboard."""

    def __init__(self, run_dir: Path, backend: str = "jsonl"):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.tb = None
        if backend == "tensorboard":
            check_backend(backend)
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, row["step"])
            self.tb.flush()


def truncate_metrics(run_dir: Path, step: int) -> None:
    """On resume, drop rows logged after the checkpoint resumed from: they are about to be redone."""
    rows = read_metrics(run_dir)
    if any(r.get("step", 0) > step for r in rows):
        keep = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows if r.get("step", 0) <= step)
        tmp = Path(run_dir) / ".metrics.jsonl.tmp"
        tmp.write_text(keep)
        os.replace(tmp, Path(run_dir) / "metrics.jsonl")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def save_image(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kw: Any) -> None: ...
    def close(self) -> None: ...


def progress(total: int, initial: int, enabled: bool):
    """A tqdm bar in steps (its rate and ETA), with samples/s as postfix; a no-op when disabled."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="train")
