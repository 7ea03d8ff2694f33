"""What an output was made with: package versions and the output-affecting part of a config."""
from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

PACKAGES = ["l2i-pipeline", "torch", "ray", "diffusers", "timm", "img2dataset", "webdataset", "pyarrow",
            "opencv-python-headless", "numpy", "pillow", "efficientnet-pytorch", "fsspec"]
# settings that change speed, not output: a rerun may change them freely (leaf names, in any section).
# A backend adds its own (stages/sd2_settings.py RUNTIME_KEYS; stages/config.py composes them).
RUNTIME_KEYS = {"batch_size", "num_actors", "num_gpus", "device", "read_tasks"}


def versions(packages: list[str] | None = None) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in packages or PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def output_affecting(d: dict[str, Any], runtime_keys: set[str] = RUNTIME_KEYS) -> dict[str, Any]:
    """The config without the keys that only change speed; two runs may share an output iff these agree."""
    return {k: output_affecting(v, runtime_keys) if isinstance(v, dict) else v
            for k, v in d.items() if k not in runtime_keys}


def differing_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts (for 'refused: X differs' messages)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differing_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def with_new_keys(old: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`old` (a recorded config) with the keys added to the code since, at their defaults: a new key's
    default keeps the old behaviour, so an output made before it existed resumes."""
    out = dict(old)
    for k, v in defaults.items():
        if k not in out:
            out[k] = v
        elif isinstance(v, dict) and isinstance(out[k], dict):
            out[k] = with_new_keys(out[k], v)
    return out
