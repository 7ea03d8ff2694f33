"""Strict loading of the official ICON checkpoints (plain state dicts), never through plain pickle."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from l2i_pipeline.core.errors import NotFound

from .backbones import SWIN_DERIVED
from .network import ICON, WEIGHTS_WHERE, variant_spec


class IconWeightsError(ValueError):
    """A checkpoint that does not fill an ICON variant exactly; the message names the keys."""


def read_state_dict(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    path = Path(checkpoint)
    if not path.is_file():
        raise NotFound(f"ICON weights not found: {path}; {WEIGHTS_WHERE}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with objects, a truncated file, not a torch file at all
        raise IconWeightsError(f"cannot read {path} as a plain state dict (weights_only=True): {e}") from e
    if not isinstance(sd, dict):
        raise IconWeightsError(f"{path} holds a {type(sd).__name__}, not a state dict")
    return sd


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _strip_module_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoints saved from nn.DataParallel prefix every key with "module."."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k.removeprefix("module."): v for k, v in sd.items()}
    return sd


def _listing(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def convert_state_dict(model: ICON, official: dict[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """Official keys -> our keys; raise naming every missing, unexpected or wrongly shaped key."""
    official = _strip_module_prefix(dict(official))
    ours = model.state_dict()
    by_official = {model.official_key(k): k for k in ours}
    converted, unexpected, bad_shape = {}, [], []
    for key, value in official.items():
        if key in by_official:
            target = by_official[key]
            if tuple(value.shape) != tuple(ours[target].shape):
                bad_shape.append(f"{key} {tuple(value.shape)} != {tuple(ours[target].shape)}")
            converted[target] = value
        elif not (model.variant == "ICON-S" and SWIN_DERIVED.match(key)):
            unexpected.append(key)
    missing = sorted(k for k, t in by_official.items() if t not in converted)
    if missing or unexpected or bad_shape:
        parts = [f"{source} does not match {model.variant}"]
        if missing:
            parts.append(f"missing {len(missing)} keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys: {_listing(sorted(unexpected))}")
        if bad_shape:
            parts.append(f"wrong shapes: {_listing(bad_shape)}")
        parts.append(f"expected the official {variant_spec(model.variant).weights_file}; {WEIGHTS_WHERE}")
        raise IconWeightsError("; ".join(parts))
    return converted


def load_icon(variant: str, checkpoint: str | Path | dict, device: str | torch.device = "cpu") -> ICON:
    """Build `variant` and fill every parameter and buffer from an official checkpoint (strict)."""
    model = ICON.empty(variant, device)
    if isinstance(checkpoint, dict):
        official, source = checkpoint, "state dict"
    else:
        official, source = read_state_dict(checkpoint), str(checkpoint)
    model.load_state_dict(convert_state_dict(model, official, source), strict=True)
    return model.eval()
