"""The ICON network (Zhuge et al., "Salient object detection via integrity learning", TPAMI 2022).

Only the final prediction (the official fourth output, pred4) is computed; the side outputs' heads
(predtrans1-3, 5) are held so the official checkpoints load strictly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import PvtV2Encoder, ResNetEncoder, SwinEncoder
from .decoder import DFA, ICE, PWV, _fuse_block, _resize

WEIGHTS_URL = "https://github.com/mczhuge/ICON#checkpoint"
WEIGHTS_WHERE = (
    f"official ICON checkpoints are published by the authors ({WEIGHTS_URL}): Google Drive "
    "https://drive.google.com/file/d/1wcL8n3lSc1pswMfDYCOBQJJjwnuhWdwK (checkpoint.zip) or Baidu "
    "https://pan.baidu.com/s/1zFXR-xIykUhoj86kiQ3GxA (code ICON)"
)


@dataclass(frozen=True)
class Variant:
    encoder: type[nn.Module]
    size: int  # square input side of the official test script
    weights_file: str  # file name inside the official checkpoint archive


VARIANTS: dict[str, Variant] = {
    "ICON-R": Variant(ResNetEncoder, 352, "ICON-Res.weight"),
    "ICON-S": Variant(SwinEncoder, 384, "ICON-Swin.weight"),
    "ICON-P": Variant(PvtV2Encoder, 384, "ICON-PVT.weight"),
}


def variant_spec(variant: str) -> Variant:
    if variant not in VARIANTS:
        raise ValueError(f"unknown ICON variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return VARIANTS[variant]


class ICON(nn.Module):
    """`forward(x)`: normalized (N,3,S,S) -> pred4 logits (N,1,S,S), before sigmoid."""

    def __init__(self, variant: str = "ICON-R"):
        super().__init__()
        self.variant = variant
        self.input_size = variant_spec(variant).size
        self.encoder = variant_spec(variant).encoder()
        c1, c2, c3, c4 = self.encoder.channels  # fine to coarse
        self.dfa1, self.dfa2, self.dfa3, self.dfa4 = DFA(c4), DFA(c3), DFA(c2), DFA(c1)
        self.ice1, self.ice2 = ICE(), ICE()
        self.pwv = PWV(64)
        self.fuse = _fuse_block(64)
        for i in range(1, 6):
            setattr(self, f"predtrans{i}", nn.Conv2d(64, 1, 3, padding=1))

    def head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """pred4 logits at the finest feature resolution (S/4), before the final upsampling."""
        f_fine, f2, f3, f_coarse = self.encoder(x)
        x1, x2, x3, x4 = self.dfa1(f_coarse), self.dfa2(f3), self.dfa3(f2), self.dfa4(f_fine)
        # each ICE call sees its finer neighbour as it was before this step (official order)
        x1, x2, x3, x4 = self.ice1(x1), self.ice1(x2, x3), self.ice2(x3, x4), self.ice2(x4)
        _, _, x3, _ = self.pwv(x1, x2, x3)
        x4 = self.fuse(x4 * _resize(x3, x4.shape[2:])) + x4
        return self.predtrans4(x4)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Logits upsampled (bilinear) to `size`, default the input's size, as the official forward."""
        return F.interpolate(self.head_logits(x), size=size or tuple(x.shape[2:]), mode="bilinear")

    @classmethod
    def empty(cls, variant: str, device: str | torch.device = "cpu") -> ICON:
        """Parameters allocated on `device` but not initialised, for a loader that fills every one.

        Random init of ~90M parameters costs seconds on a CPU for nothing. Built on the meta device;
        the buffers that checkpoints do not hold (timm Swin's window indices and masks) are recomputed
        by their modules. A timm too old to recompute them gets an ordinary construction instead.
        """
        with torch.device("meta"):
            model = cls(variant)
        holders = [m for m in model.modules() if m._non_persistent_buffers_set]
        if not all(hasattr(m, "init_non_persistent_buffers") for m in holders):
            return cls(variant).to(device)
        model.to_empty(device=device)
        for m in holders:
            m.init_non_persistent_buffers()
        return model

    def official_key(self, key: str) -> str:
        """The official checkpoint key that fills our state-dict entry `key`."""
        if key.startswith("encoder."):
            return "encoder." + self.encoder.official_key(key.removeprefix("encoder."))
        return key
