"""The one record that flows through every stage, and its (de)serialisation for Ray Data batches."""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OK = "ok"
REJECTED = "rejected"


@dataclass
class Sample:
    """One input row. Stages fill the arrays; a rejected sample keeps its reason and flows on to the writer."""

    key: str
    unit: str  # the output shard this sample belongs to
    caption: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # url, LAION columns, sizes, settings, scores
    status: str = OK
    reason: str | None = None
    raw: bytes | None = None  # the downloaded file, until decode
    image: np.ndarray | None = None  # I: uint8 RGB HxWx3 at the working resolution
    mask: np.ndarray | None = None  # m: float32 HxW in [0, 1]
    inpaint_mask: np.ndarray | None = None  # m~: uint8 HxW, 0 or 255
    fg: np.ndarray | None = None  # F: uint8 RGB
    bg: np.ndarray | None = None  # B: uint8 RGB
    members: dict[str, bytes] | None = None  # encoded tar members, set by the encode stage
    alpha: np.ndarray | None = None  # layers.alpha=matting: float32 HxW in [0, 1], the soft alpha
    fg_rgba: np.ndarray | None = None  # layers.alpha=matting: uint8 HxWx4, F' (clean colours) with alpha
    peels: list = field(default_factory=list)  # layers k >= 2 (formats/decode.py Layer), layers.count > 1

    @property
    def ok(self) -> bool:
        return self.status == OK

    def reject(self, reason: str) -> Sample:
        """Mark rejected and drop the pixels: only the reason and metadata travel on."""
        self.status, self.reason = REJECTED, reason
        self.raw = self.image = self.mask = self.inpaint_mask = self.fg = self.bg = None
        self.members = None
        self.alpha = self.fg_rgba = None
        self.peels = []
        return self


def to_batch(samples: list[Sample]) -> dict[str, np.ndarray]:
    """Ray Data batch of one row holding every sample, pickled (protocol 5 copies arrays as flat buffers).

    One row per batch, not per sample: a Ray block then holds whole batches, so a model actor gets its
    batch in one piece, and the scheduler handles one object per batch instead of one per image.
    """
    col = np.empty(1, dtype=object)
    col[0] = pickle.dumps(samples, protocol=5)
    return {"samples": col}


def from_batch(batch: dict[str, Any]) -> list[Sample]:
    return [s for b in batch["samples"] for s in pickle.loads(b)]
