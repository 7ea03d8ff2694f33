"""CaT2I-AE (paper IV-B): the SD KL-f8 autoencoder blocks from diffusers, reshaped for two-layer images.

Encoder: diffusers' `Encoder` on F, B, m stacked as 7 channels (I is not an input), `quant_conv`, a
diagonal Gaussian over a 4-channel latent at H/8. Decoder: diffusers' `Decoder` without its `conv_out`,
then one conv-bn-relu-conv head per output: F (3), B (3), m (1, sigmoid) and the auxiliary I (3), which
`aux_image_head=False` drops (the paper's "no-sup"). `ModelMixin`/`ConfigMixin` give `save_pretrained` /
`from_pretrained` with safetensors. Images are on the [-1, 1] scale (not clamped, as SD's decoder); the
mask is in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import Decoder, DiagonalGaussianDistribution, Encoder
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

IN_CHANNELS = 7  # F (3) + B (3) + m (1)


@dataclass
class LayeredOutput:
    fg: torch.Tensor  # B x 3 x H x W, [-1, 1] scale
    bg: torch.Tensor  # B x 3 x H x W
    mask: torch.Tensor  # B x 1 x H x W, [0, 1]
    image: torch.Tensor | None  # B x 3 x H x W, None without the auxiliary head

    def composite(self) -> torch.Tensor:
        """C = m F + (1 - m) B from the predicted layers."""
        return self.mask * self.fg + (1 - self.mask) * self.bg


class Head(nn.Sequential):
    """conv3x3 -> BatchNorm -> ReLU -> conv3x3: the paper's 'tiny two layer convolutional network'."""

    def __init__(self, in_channels: int, width: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                         nn.Conv2d(width, out_channels, 3, padding=1))

    @property
    def last_layer(self) -> torch.Tensor:
        """The weight the GAN's adaptive weight differentiates against (LDM: the decoder's conv_out)."""
        return self[-1].weight


class CaT2IAE(ModelMixin, ConfigMixin):
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, block_out_channels: tuple[int, ...] = (128, 256, 512, 512), layers_per_block: int = 2,
                 norm_num_groups: int = 32, latent_channels: int = 4, head_width: int = 64,
                 aux_image_head: bool = True, mid_block_attention: bool = True, act_fn: str = "silu"):
        super().__init__()
        ch = tuple(block_out_channels)
        self.encoder = Encoder(in_channels=IN_CHANNELS, out_channels=latent_channels,
                               down_block_types=("DownEncoderBlock2D",) * len(ch), block_out_channels=ch,
                               layers_per_block=layers_per_block, norm_num_groups=norm_num_groups, act_fn=act_fn,
                               double_z=True, mid_block_add_attention=mid_block_attention)
        self.decoder = Decoder(in_channels=latent_channels, out_channels=3,
                               up_block_types=("UpDecoderBlock2D",) * len(ch), block_out_channels=ch,
                               layers_per_block=layers_per_block, norm_num_groups=norm_num_groups, act_fn=act_fn,
                               mid_block_add_attention=mid_block_attention)
        self.decoder.conv_out = nn.Identity()  # the paper removes the SD decoder's last layer
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)
        self.head_fg = Head(ch[0], head_width, 3)
        self.head_bg = Head(ch[0], head_width, 3)
        self.head_mask = Head(ch[0], head_width, 1)
        self.head_image = Head(ch[0], head_width, 3) if aux_image_head else None

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    def encode(self, x: torch.Tensor) -> AutoencoderKLOutput:
        """x: B x 7 x H x W (F, B in [-1, 1]; m in [0, 1]) -> .latent_dist over B x 4 x H/8 x W/8."""
        if x.shape[1] != IN_CHANNELS:
            raise ValueError(f"CaT2IAE.encode expects {IN_CHANNELS} channels (F, B, m), got {x.shape[1]}")
        return AutoencoderKLOutput(latent_dist=DiagonalGaussianDistribution(self.quant_conv(self.encoder(x))))

    def decode(self, z: torch.Tensor) -> LayeredOutput:
        h = self.decoder(self.post_quant_conv(z))
        image = self.head_image(h) if self.head_image is not None else None
        return LayeredOutput(self.head_fg(h), self.head_bg(h), torch.sigmoid(self.head_mask(h)), image)

    def forward(self, x: torch.Tensor, sample_posterior: bool = True,
                generator: torch.Generator | None = None) -> tuple[LayeredOutput, DiagonalGaussianDistribution]:
        posterior = self.encode(x).latent_dist
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z), posterior

    def heads(self) -> dict[str, Head]:
        out = {"fg": self.head_fg, "bg": self.head_bg, "mask": self.head_mask}
        if self.head_image is not None:
            out["image"] = self.head_image
        return out


def stack_layers(fg: torch.Tensor, bg: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The encoder's 7-channel input from F, B ([-1, 1]) and m ([0, 1])."""
    return torch.cat([fg, bg, mask], dim=1)
