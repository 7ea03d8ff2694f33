"""The PatchGAN discriminator of the SD autoencoder's GAN loss (pix2pix's NLayerDiscriminator layout).

conv4x4/2 + LeakyReLU, then (n_layers - 1) conv4x4/2 + BN + LeakyReLU with doubling width (capped at 8x),
one conv4x4/1 + BN + LeakyReLU, and a conv4x4/1 to one logit per patch. Weights start at N(0, 0.02), BN
scales at N(1, 0.02), as in the reference.
"""
from __future__ import annotations

from torch import nn


class PatchDiscriminator(nn.Sequential):
    def __init__(self, in_channels: int = 3, channels: int = 64, n_layers: int = 3):
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(channels * prev, channels * mult, 4, stride, 1, bias=False),
                       nn.BatchNorm2d(channels * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(channels * mult, 1, 4, 1, 1))
        super().__init__(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
