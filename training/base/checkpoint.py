"""Checkpoints without pickle: tensors in safetensors, everything else in JSON (docs/TRAINING.md, "Resume").

`checkpoints/step_NNNNNNN/` holds `MODULE.safetensors` for each module a task saves (model, EMA,
discriminator ...), `optim_NAME.safetensors` for each optimiser's tensors (Adam's moments and step) with its
param groups in `state.json`, and `state.json` (step, stream positions, the per-step seed rule, the grad
scaler, the task's small state, config, versions). It is written under a temporary name and renamed, so a
kill at any moment leaves the previous checkpoints intact; only the last `keep` are kept.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

STEP_DIR = re.compile(r"^step_(\d{7,})$")


def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (renamed into place, with state.json), oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = STEP_DIR.match(p.name)
        if m and (p / "state.json").is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1][1] if ckpts else None


def resolve_init(path: str | Path) -> Path:
    """`--init`: a checkpoint dir (RUN/checkpoints/step_N), or a run dir (its latest checkpoint)."""
    from l2i_pipeline.core.errors import NotFound

    p = Path(path)
    if (p / "state.json").is_file():
        return p
    last = latest_checkpoint(p)
    if last is None:
        raise NotFound(f"--init {p} is neither a checkpoint (RUN/checkpoints/step_NNNNNNN with state.json) nor a "
                       f"run dir with checkpoints")
    return last


def remove_partial(run_dir: Path) -> None:
    """Drop temporary checkpoint dirs a killed run left behind (never a renamed, complete one)."""
    root = Path(run_dir) / "checkpoints"
    for p in root.glob(".tmp_step_*") if root.is_dir() else []:
        shutil.rmtree(p, ignore_errors=True)


def _optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimiser state as (tensors, JSON): per-parameter tensors flattened as 'INDEX.NAME'."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _module_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(run_dir: Path, step: int, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], state: dict[str, Any], keep: int) -> Path:
    """Write step_NNNNNNN/ atomically (temp dir + rename), then drop all but the last `keep`."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f".tmp_{step_dir_name(step)}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, module in modules.items():
        save_file(_module_tensors(module), str(tmp / f"{name}.safetensors"))
    optim_meta = {}
    for name, opt in optimizers.items():
        tensors, meta = _optimizer_to_flat(opt)
        save_file(tensors, str(tmp / f"optim_{name}.safetensors"))
        optim_meta[name] = meta
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "optimizers": optim_meta}, indent=1,
                                               sort_keys=True, default=str))
    for f in tmp.iterdir():  # the rename below must publish bytes that are on disk
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():  # a rerun that reached the same step again: replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                    device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load tensors into the given modules and optimisers (strictly); return state.json."""
    path = Path(path)
    state = json.loads((path / "state.json").read_text())
    for name, module in modules.items():
        module.load_state_dict(load_file(str(path / f"{name}.safetensors"), device=str(device)), strict=True)
    for name, opt in optimizers.items():
        tensors = load_file(str(path / f"optim_{name}.safetensors"))  # load_state_dict places them
        _optimizer_from_flat(opt, tensors, state["optimizers"][name])
    return state
