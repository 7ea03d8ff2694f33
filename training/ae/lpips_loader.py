"""LPIPS (the `lpips` package) with its VGG16 trunk from a local file, never from the network.

The package ships only its linear heads; it would download torchvision's ImageNet VGG16
(`vgg16-397923af.pth`) at run time. Here the trunk is built as the VGG16 feature stack alone (the package
builds, then discards, the 120M-parameter classifier too) and filled from `lpips.vgg_weights`; tests use
`lpips.pnet_rand=true`, a random trunk that needs no file. The module is frozen but differentiable: the
gradient reaches the images it compares (LPIPS under no_grad would teach the model nothing).
"""
from __future__ import annotations

import contextlib
import types
from pathlib import Path

import torch

from l2i_pipeline.core.errors import NotFound
from training.base.config import LPIPSConfig

VGG_FILE = "vgg16-397923af.pth"
VGG_WHERE = (f"torchvision's ImageNet VGG16 weights, {VGG_FILE}, published at "
             f"https://download.pytorch.org/models/{VGG_FILE}; set lpips.vgg_weights=PATH")


def vgg_weights_path(cfg: LPIPSConfig) -> Path | None:
    """The trunk file to load, or None for a random trunk; a clear error when it is needed and absent."""
    if cfg.pnet_rand:
        return None
    if not cfg.vgg_weights:
        raise NotFound(f"LPIPS needs {VGG_WHERE} (or lpips.pnet_rand=true for a random trunk, tests only)")
    path = Path(cfg.vgg_weights).expanduser()
    if not path.is_file():
        raise NotFound(f"LPIPS trunk file not found: {path}; it is {VGG_WHERE}")
    return path


@contextlib.contextmanager
def _features_only_vgg():
    """Let lpips build only VGG16's feature stack (what it keeps) instead of the whole classifier."""
    import lpips.pretrained_networks as pn
    from torchvision.models.vgg import cfgs, make_layers

    original = pn.tv
    pn.tv = types.SimpleNamespace(vgg16=lambda *a, **k: types.SimpleNamespace(features=make_layers(cfgs["D"])))
    try:
        yield
    finally:
        pn.tv = original


def load_lpips(cfg: LPIPSConfig) -> torch.nn.Module:
    import lpips

    path = vgg_weights_path(cfg)
    with _features_only_vgg():
        model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        trunk = {}
        for name in model.net.state_dict():  # 'slice3.10.weight' <- torchvision's 'features.10.weight'
            key = f"features.{name.split('.', 1)[1]}"
            if key not in state:
                raise NotFound(f"{path} is not {VGG_FILE}: it lacks {key}")
            trunk[name] = state[key]
        model.net.load_state_dict(trunk, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
