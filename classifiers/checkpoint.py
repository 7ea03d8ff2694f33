"""Checkpoint = `NAME.safetensors` (whole classifier, frozen backbone included: scoring needs no other
file) + `NAME.json` (task, encoding, image size, threshold, metrics, label counts, provenance)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from classifiers.model import QualityClassifier
from l2i_pipeline.core.errors import NotFound


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """`x`, `x.safetensors` or `x.json` -> (x.safetensors, x.json)."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(model: QualityClassifier, meta: dict[str, Any], path: str | Path) -> tuple[Path, Path]:
    from safetensors.torch import save_file

    st_path, json_path = checkpoint_paths(path)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {**meta, "task": model.task, "encoding": model.encoding, "image_size": model.image_size}
    _atomic(st_path, lambda p: save_file(state, str(p), metadata={"task": model.task, "encoding": model.encoding}))
    _atomic(json_path, lambda p: p.write_text(json.dumps(meta, indent=2, sort_keys=True, default=float)))
    return st_path, json_path


def load_meta(path: str | Path) -> dict[str, Any]:
    st_path, json_path = checkpoint_paths(path)
    for p in (st_path, json_path):
        if not p.is_file():
            raise NotFound(f"classifier checkpoint file not found: {p} (made by `l2i classifiers train`)")
    return json.loads(json_path.read_text())


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[QualityClassifier, dict[str, Any]]:
    from safetensors.torch import load_file

    meta = load_meta(path)
    model = QualityClassifier(meta["task"], meta["encoding"], int(meta["image_size"]))
    model.load_state_dict(load_file(str(checkpoint_paths(path)[0])))
    return model.to(device).eval(), meta


def save_meta(path: str | Path, meta: dict[str, Any]) -> None:
    json_path = checkpoint_paths(path)[1]
    _atomic(json_path, lambda p: p.write_text(json.dumps(meta, indent=2, sort_keys=True, default=float)))
