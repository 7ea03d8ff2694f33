"""What the diffusion model needs from an autoencoder, for each kind the paper compares (Table I).

- `CaT2IAE` (training.models.ae): F, B, m in one 4-channel latent; decodes to F̂, B̂, m̂ (and Î).
- `SDStackAE` (`ae.kind=sd_stack`, the SD-AE-UNet baselines): a frozen SD KL-f8 autoencoder applied to F,
  B and m separately (m as a grey image), latents concatenated to 12 channels.
- diffusers `AutoencoderKL` (`ldm.target=image`, SD-LAION-L2I): plain text-to-image on I.

`posterior(ae, batch)` gives the latent mean and std of a batch of layers (dict fg, bg, mask, image on
the [-1, 1] / [0, 1] scales); `decode(ae, z)` gives a `Decoded`. Both take unscaled latents.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from l2i_pipeline.core.errors import ConfigError, NotFound


@dataclass
class Decoded:
    image: torch.Tensor | None  # B x 3 x H x W, [-1, 1]
    fg: torch.Tensor | None = None
    bg: torch.Tensor | None = None
    mask: torch.Tensor | None = None  # B x 1 x H x W, [0, 1]


class SDStackAE(ModelMixin, ConfigMixin):
    """A frozen SD autoencoder per layer: z = concat(g(F), g(B), g(m)) (paper eq. 6)."""

    @register_to_config
    def __init__(self, vae_config: dict | None = None):
        super().__init__()
        from diffusers import AutoencoderKL

        self.vae = AutoencoderKL.from_config(vae_config or {})

    @classmethod
    def from_sd_vae(cls, vae) -> SDStackAE:
        stack = cls(vae_config={k: v for k, v in vae.config.items() if not k.startswith("_")})
        stack.vae.load_state_dict(vae.state_dict())
        return stack.eval().requires_grad_(False)

    @property
    def latent_channels(self) -> int:
        return 3 * self.vae.config.latent_channels


def kind_of(ae) -> str:
    if isinstance(ae, SDStackAE):
        return "sd_stack"
    if type(ae).__name__ == "AutoencoderKL":
        return "image"
    return "cat2i"


def latent_channels(ae) -> int:
    kind = kind_of(ae)
    if kind == "sd_stack":
        return ae.latent_channels
    return int(ae.config.latent_channels)


def downsample_factor(ae) -> int:
    vae = ae.vae if isinstance(ae, SDStackAE) else ae
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _mean_std(dist) -> tuple[torch.Tensor, torch.Tensor]:
    return dist.mean, dist.std


@torch.no_grad()
def posterior(ae, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of q(z | x) for a batch of layers; each B x C x h x w."""
    kind = kind_of(ae)
    if kind == "image":
        return _mean_std(ae.encode(batch["image"]).latent_dist)
    if kind == "sd_stack":
        parts = [batch["fg"], batch["bg"], (batch["mask"] * 2 - 1).expand(-1, 3, -1, -1)]
        stats = [_mean_std(ae.vae.encode(p).latent_dist) for p in parts]
        return torch.cat([m for m, _ in stats], 1), torch.cat([s for _, s in stats], 1)
    from training.models.ae import stack_layers

    return _mean_std(ae.encode(stack_layers(batch["fg"], batch["bg"], batch["mask"])).latent_dist)


@torch.no_grad()
def decode(ae, z: torch.Tensor) -> Decoded:
    kind = kind_of(ae)
    if kind == "image":
        return Decoded(image=ae.decode(z).sample)
    if kind == "sd_stack":
        fg, bg, m = (ae.vae.decode(part).sample for part in z.chunk(3, dim=1))
        return Decoded(image=None, fg=fg, bg=bg, mask=((m.mean(1, keepdim=True) + 1) / 2).clamp(0, 1))
    out = ae.decode(z)
    return Decoded(image=out.image, fg=out.fg, bg=out.bg, mask=out.mask.clamp(0, 1))


def load_ae(path: str | Path, kind: str = "cat2i", target: str = "layers"):
    """The frozen autoencoder an LDM trains on: a CaT2I-AE export (RUN/ae), or an SD autoencoder dir
    (diffusers `AutoencoderKL`, e.g. stable-diffusion-v1-4/vae) for the baselines. One error names what is missing.
    """
    from diffusers import AutoencoderKL

    p = check_ae_dir(path, kind, target)
    if target == "image" or kind == "sd_stack":
        vae = AutoencoderKL.from_pretrained(p)
        ae = vae if target == "image" else SDStackAE.from_sd_vae(vae)
    else:
        from training.models.ae import CaT2IAE

        ae = CaT2IAE.from_pretrained(p)
    return ae.eval().requires_grad_(False)


def check_ae_dir(path: str | Path, kind: str = "cat2i", target: str = "layers") -> Path:
    """The autoencoder dir (a URL: the committed export, fetched; training/base/runstore.py), or one error naming
    the missing dir/file or the wrong kind of model."""
    from training.base.runstore import fetched

    p = fetched(path)
    if not p.is_dir():
        raise NotFound(f"autoencoder dir not found: {p} (expected RUN/ae from `l2i train ae`, or an SD vae/ dir)")
    config = p / "config.json"
    if not config.is_file():
        raise NotFound(f"missing file: {config} (autoencoder config)")
    if not any((p / f).is_file() for f in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")):
        raise NotFound(f"missing file: {p / 'diffusion_pytorch_model.safetensors'} (autoencoder weights)")
    cls_name = json.loads(config.read_text()).get("_class_name")
    if target == "image" or kind == "sd_stack":
        if cls_name != "AutoencoderKL":
            what = "ldm.target=image" if target == "image" else "ae.kind=sd_stack"
            raise ConfigError(f"{what} needs an SD autoencoder dir (AutoencoderKL), but {p} holds a {cls_name}")
    elif cls_name != "CaT2IAE":
        raise ConfigError(f"{p} holds a {cls_name}, not a CaT2IAE; for an SD autoencoder set ae.kind=sd_stack "
                          f"(layers) or ldm.target=image")
    return p
