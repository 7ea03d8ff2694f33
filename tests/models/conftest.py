"""Reference data for the ICON tests (tests/fixtures/icon/, see its README) and seeded stand-in weights.

Tests get these helpers through the `icon_ref` fixture (pytest imports test modules by path here).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from l2i_pipeline.models.icon.seeded import seeded_state_dict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "icon"
TAGS = {"ICON-R": "r", "ICON-S": "s", "ICON-P": "p"}


def meta(variant: str) -> dict:
    return json.loads((FIXTURES / f"{TAGS[variant]}.json").read_text())


def arrays(variant: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{TAGS[variant]}.npz") as z:
        return {k: z[k] for k in z.files}


def em_arrays() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "em.npz") as z:
        return {k: z[k] for k in z.files}


def official_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    return {k: tuple(shape) for k, shape, _ in meta(variant)["keys"]}


@functools.lru_cache(maxsize=1)
def official_weights(variant: str) -> dict[str, torch.Tensor]:
    """The seeded weights under the official key names, as the reference run used them."""
    return seeded_state_dict(official_shapes(variant), meta(variant)["seed"])


def random_rgb(seed: int, h: int, w: int) -> np.ndarray:
    """The reference run's images: legacy RandomState streams are stable across numpy versions."""
    return np.random.RandomState(seed).randint(0, 256, size=(h, w, 3)).astype(np.uint8)


@pytest.fixture(scope="session")
def icon_ref() -> SimpleNamespace:
    return SimpleNamespace(meta=meta, arrays=arrays, em_arrays=em_arrays, official_shapes=official_shapes,
                           official_weights=official_weights, random_rgb=random_rgb)
