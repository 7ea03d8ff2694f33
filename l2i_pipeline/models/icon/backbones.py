"""ICON's encoders, built from timm (no pretrained download) and fed the official checkpoints' keys.

Each backbone returns its four feature maps fine to coarse (NCHW) and names, for each of its own
state-dict keys, the official encoder key (without the "encoder." prefix) that fills it. The official
code keeps ResNet-50's torchvision names (identical in timm); its PVTv2 numbers stages in names
(block1, norm1, patch_embed1); its Swin runs each stage's patch merging at the end of the stage, where
timm runs it at the start of the next one.
"""
from __future__ import annotations

import re

import timm
import torch
from torch import nn


class ResNetEncoder(nn.Module):
    """ResNet-50 trunk; features after layer1..layer4 (strides 4, 8, 16, 32)."""

    channels = (256, 512, 1024, 2048)

    def __init__(self):
        super().__init__()
        self.net = timm.create_model("resnet50", pretrained=False, num_classes=0, global_pool="")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        n = self.net
        x = n.maxpool(n.act1(n.bn1(n.conv1(x))))
        feats = []
        for layer in (n.layer1, n.layer2, n.layer3, n.layer4):
            x = layer(x)
            feats.append(x)
        return feats

    @staticmethod
    def official_key(key: str) -> str:
        return key.removeprefix("net.")


class PvtV2Encoder(nn.Module):
    """PVTv2-b4; features after each stage's final LayerNorm (strides 4, 8, 16, 32)."""

    channels = (64, 128, 320, 512)

    def __init__(self):
        super().__init__()
        self.net = timm.create_model("pvt_v2_b4", pretrained=False, num_classes=0, global_pool="")
        self.net.head = nn.Identity()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.net.patch_embed(x)
        feats = []
        for stage in self.net.stages:
            x = stage(x)
            feats.append(x)
        return feats

    @staticmethod
    def official_key(key: str) -> str:
        key = key.removeprefix("net.")
        if key.startswith("patch_embed."):
            return "patch_embed1." + key.removeprefix("patch_embed.")
        m = re.match(r"stages\.(\d)\.(downsample|norm|blocks)\.(.*)", key)
        if not m:
            return key
        stage, kind, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
        if kind == "downsample":
            return f"patch_embed{stage}.{rest}"
        if kind == "norm":
            return f"norm{stage}.{rest}"
        return f"block{stage}.{rest.replace('mlp.dwconv.', 'mlp.dwconv.dwconv.')}"


class SwinEncoder(nn.Module):
    """Swin-B (window 12, input 384), features as ICON-S takes them: the patch embedding (stride 4) and
    the outputs of the first three stages *after* patch merging (strides 8, 16, 32). The last stage's
    blocks feed nothing ICON uses, so they hold their weights but are not run."""

    channels = (128, 256, 512, 1024)

    def __init__(self, img_size: int = 384):
        super().__init__()
        self.net = timm.create_model(
            "swin_base_patch4_window12_384", pretrained=False, num_classes=0, global_pool="", img_size=img_size
        )
        self.net.norm = nn.Identity()  # the official encoder has no final norm

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.net.patch_embed(x)  # NHWC
        feats = [x]
        for i in range(3):
            x = self.net.layers[i + 1].downsample(self.net.layers[i].blocks(x))
            feats.append(x)
        return [f.permute(0, 3, 1, 2) for f in feats]

    @staticmethod
    def official_key(key: str) -> str:
        key = key.removeprefix("net.")
        m = re.match(r"layers\.(\d)\.downsample\.(.*)", key)
        return f"layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}" if m else key


# Buffers the official Swin saves but which are pure functions of the window geometry; timm recomputes
# them (and does not save them), so the loader consumes them without using their values.
SWIN_DERIVED = re.compile(r"encoder\.layers\.\d\.blocks\.\d+\.(attn\.relative_position_index|attn_mask)$")
