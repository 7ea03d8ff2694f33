"""Stable Diffusion v1's text-conditioned UNet (`UNet2DConditionModel`), sized by preset.

In/out channels are the latent channels (4 for CaT2I-AE, 12 for the SD-AE-UNet baseline's stacked
latents); cross-attention width is the text encoder's hidden size. `widen_io` turns an SD v1-4 UNet
into the "(ft)" baseline's initialisation: conv_in/conv_out widened, the extra weights copied per group.
"""
from __future__ import annotations

from pathlib import Path

import torch

from l2i_pipeline.core.errors import ConfigError, NotFound

SD_V1 = dict(
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, attention_head_dim=8, norm_num_groups=32,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
)
PRESETS = {
    "sd_v1": SD_V1,
    "small": dict(SD_V1, block_out_channels=(128, 256, 512, 512)),
    "tiny": dict(block_out_channels=(32, 64), layers_per_block=1, attention_head_dim=4, norm_num_groups=8,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")),
}


def build_unet(preset: str, latent_channels: int, cross_attention_dim: int, sample_size: int):
    """A fresh UNet2DConditionModel; `sample_size` is the latent side (resolution / 8)."""
    from diffusers import UNet2DConditionModel

    if preset not in PRESETS:
        raise ConfigError(f"config key 'ldm.unet': unknown preset {preset!r}; known: {sorted(PRESETS)}")
    return UNet2DConditionModel(sample_size=sample_size, in_channels=latent_channels,
                                out_channels=latent_channels, cross_attention_dim=cross_attention_dim,
                                **PRESETS[preset])


def load_unet(path: str | Path):
    from diffusers import UNet2DConditionModel

    p = Path(path)
    if not (p / "config.json").is_file():
        raise NotFound(f"UNet dir has no config.json: {p}")
    return UNet2DConditionModel.from_pretrained(p)


@torch.no_grad()
def widen_io(unet, channels: int):
    """A copy of `unet` whose conv_in/conv_out take/give `channels` (a multiple of the old ones).

    conv_in's weights are tiled over the new input groups and divided by their number, so a stack of
    identical latents gives the pretrained activations; conv_out's are tiled, so each group starts as
    the pretrained prediction.
    """
    from diffusers import UNet2DConditionModel

    old = unet.config.in_channels
    if channels % old:
        raise ConfigError(f"cannot widen a {old}-channel UNet to {channels} channels (not a multiple)")
    k = channels // old
    wide = UNet2DConditionModel.from_config({**unet.config, "in_channels": channels, "out_channels": channels})
    state = unet.state_dict()
    state["conv_in.weight"] = state["conv_in.weight"].repeat(1, k, 1, 1) / k
    state["conv_out.weight"] = state["conv_out.weight"].repeat(k, 1, 1, 1)
    state["conv_out.bias"] = state["conv_out.bias"].repeat(k)
    wide.load_state_dict(state)
    return wide
