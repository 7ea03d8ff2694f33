"""Deterministic stand-in weights: each tensor depends only on (key name, shape, seed).

The official ICON checkpoints are too large to ship, so fidelity tests rebuild identical weights on
both sides (the official network, ours) from the official key names. Values are scaled so that a deep
random network stays numerically tame: matrices ~ N(0, 1/fan_in), norm scales near 1, BN running
variances in [0.5, 1.5].
"""
from __future__ import annotations

import hashlib
import math

import torch

# Buffers recomputed from the architecture (Swin's window index and shift masks); not generated.
DERIVED_SUFFIXES = ("relative_position_index", "attn_mask")


def _generator(key: str, seed: int) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def seeded_tensor(key: str, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """The stand-in value of one state-dict entry (float32, or int64 for BN's batch counter)."""
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.long)
    g = _generator(key, seed)
    noise = torch.randn(shape, generator=g, dtype=torch.float32)
    numel = math.prod(shape) if shape else 1
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g, dtype=torch.float32)
    if key.endswith("running_mean") or key.endswith("bias") or not shape:
        return 0.1 * noise
    if key.endswith("weight") and numel == shape[0]:  # norm scales, PReLU slopes, LN([C,1,1])
        return 1.0 + 0.1 * noise
    fan_in = max(1, numel // shape[0])
    return noise / math.sqrt(fan_in)


def seeded_state_dict(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Stand-in values for every key except derived buffers (those keep zeros of the right shape)."""
    out = {}
    for key, shape in shapes.items():
        if key.endswith(DERIVED_SUFFIXES):
            out[key] = torch.zeros(shape, dtype=torch.long if key.endswith("index") else torch.float32)
        else:
            out[key] = seeded_tensor(key, tuple(shape), seed)
    return out
