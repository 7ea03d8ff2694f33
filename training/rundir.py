"""The run directory: `run.json` (what the run is), `metrics.jsonl`, validation PNGs, the progress bar.

`run.json` holds the resolved config and package versions. A rerun into the same directory resumes, and
is refused when an output-affecting key differs (the keys are named); `config.RUNTIME_KEYS` may change.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from l2i_pipeline.core.errors import ConfigError, StorageError
from l2i_pipeline.core.provenance import differing_keys, output_affecting, versions
from training.config import RUNTIME_KEYS, TrainConfig

PACKAGES = ["l2i-pipeline", "torch", "ray", "diffusers", "safetensors", "lpips", "numpy", "pillow"]


def prepare_run_dir(run_dir: Path, cfg: TrainConfig, task: str, data_url: str) -> dict[str, Any]:
    """Create or reopen the run dir; write run.json on a fresh start, refuse an incompatible rerun."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StorageError(f"cannot write to run directory {run_dir}: {e}") from None
    new = {"task": task, "data": data_url, "config": cfg.to_dict(), "versions": versions(PACKAGES)}
    path = run_dir / "run.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("task") != task:
            raise ConfigError(f"{run_dir} holds a {old.get('task')!r} run, not {task!r}; use another --out")
        diff = differing_keys(output_affecting(old.get("config", {}), RUNTIME_KEYS),
                              output_affecting(new["config"], RUNTIME_KEYS))
        if diff:
            raise ConfigError(f"{run_dir} was started with a different config; differing keys: {', '.join(diff)} "
                              f"(see {path}); use another --out or the same settings")
        new["started"] = old.get("started")
        new["resumed"] = old.get("resumed", []) + [time.strftime("%Y-%m-%dT%H:%M:%S")]
    else:
        new["started"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    tmp = path.with_name(".run.json.tmp")
    tmp.write_text(json.dumps(new, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return new


class Metrics:
    """One JSON line per log step, always; TensorBoard scalars too with log.backend=tensorboard."""

    def __init__(self, run_dir: Path, backend: str = "jsonl"):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.tb = None
        if backend == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("log.backend=tensorboard needs the tensorboard package (pip install "
                                  "tensorboard)") from None
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
