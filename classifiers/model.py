"""EfficientNet-b0 with its last layer replaced by one neuron giving P(good); everything else frozen.

The backbone is always in eval mode (BatchNorm running statistics never move), so its features are a
fixed function of the input: training only fits `fc`, and features can be computed once and cached.

Inputs are float tensors in [0, 1], N x C x H x W; the model normalises them itself so a checkpoint is
self-contained. C is 3 (RGB of B) for `inpaint` and 4 (RGB of I, then m) for `mask`.
"""
from __future__ import annotations

from pathlib import Path

import torch
from efficientnet_pytorch import EfficientNet
from torch import nn

from l2i_pipeline.core.errors import ConfigError, InputError, NotFound

B0_FILE = "efficientnet-b0-355c32eb.pth"
B0_URL = f"https://github.com/lukemelas/EfficientNet-PyTorch/releases/download/1.0/{B0_FILE}"
FEATURE_DIM = 1280
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_MEAN, GRAY_STD = 0.449, 0.226  # the mask channel is normalised like a gray ImageNet image

# task -> encodings of its input. mask encodings (see README "Quality classifiers"):
#   pair:  two frozen passes, I and the cutout I*m, features concatenated (2 x 1280)
#   stem4: one pass with a 4-channel stem; the mask filter starts as the mean of the RGB filters
ENCODINGS = {"inpaint": ("bg",), "mask": ("pair", "stem4")}
DEFAULT_ENCODING = {"inpaint": "bg", "mask": "pair"}
IN_CHANNELS = {"inpaint": 3, "mask": 4}


def load_backbone_state(path: str | Path | None) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of efficientnet-pytorch, from a local file only (no hub here)."""
    if path is None or not Path(path).is_file():
        raise NotFound(
            f"EfficientNet-b0 ImageNet weights not found: {path or '(no --backbone-weights given)'}; "
            f"download {B0_FILE} from {B0_URL} and pass it with --backbone-weights")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user mistake
        raise InputError(f"--backbone-weights {path} is not a PyTorch weights file ({type(e).__name__}); "
                         f"expected {B0_FILE} from {B0_URL}") from None
    expected = EfficientNet.from_name("efficientnet-b0").state_dict()
    wrong = [k for k, v in expected.items()
             if not isinstance(state, dict) or k not in state or getattr(state[k], "shape", None) != v.shape]
    if wrong:
        raise InputError(f"--backbone-weights {path} is not an EfficientNet-b0 state dict ({len(wrong)} of "
                         f"{len(expected)} tensors missing or of another shape, e.g. {wrong[0]}); expected {B0_FILE}")
    return state


def _stem4(stem: nn.Module) -> None:
    """Give the stem a 4th input channel whose filters are the mean RGB filters (timm-style 3/4 rescale)."""
    w = stem.weight.data
    stem.weight = nn.Parameter(torch.cat([w, w.mean(1, keepdim=True)], 1) * 0.75)
    stem.in_channels = 4


class QualityClassifier(nn.Module):
    def __init__(self, task: str, encoding: str | None = None, image_size: int = 224,
                 backbone_state: dict[str, torch.Tensor] | None = None):
        super().__init__()
        encoding = encoding or DEFAULT_ENCODING.get(task, "")
        if task not in ENCODINGS:
            raise ConfigError(f"unknown task {task!r}; choose one of {sorted(ENCODINGS)}")
        if encoding not in ENCODINGS[task]:
            raise ConfigError(f"task {task!r} has encodings {ENCODINGS[task]}, not {encoding!r}")
        if image_size % 32:
            raise ConfigError(f"image_size must be a multiple of 32, got {image_size}")
        self.task, self.encoding, self.image_size = task, encoding, image_size
        net = EfficientNet.from_name("efficientnet-b0", image_size=image_size)
        if backbone_state is not None:
            net.load_state_dict(backbone_state)
        net._fc, net._dropout = nn.Identity(), nn.Identity()  # replaced by self.fc below
        if encoding == "stem4":
            _stem4(net._conv_stem)
        self.backbone = net.requires_grad_(False).eval()
        self.feature_dim = FEATURE_DIM * (2 if encoding == "pair" else 1)
        self.fc = nn.Linear(self.feature_dim, 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def in_channels(self) -> int:
        return IN_CHANNELS[self.task]

    def train(self, mode: bool = True) -> QualityClassifier:
        super().train(mode)
        self.backbone.eval()  # frozen BatchNorm: running statistics never update
        return self

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).flatten(1)  # extract_features + global average pool (fc is Identity)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen features, N x feature_dim, of inputs in [0, 1] (N x in_channels x H x W)."""
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self.task} classifier expects {self.in_channels} channels, got {x.shape[1]}")
        rgb = x[:, :3]
        if self.encoding == "bg":
            return self._embed((rgb - self.mean) / self.std)
        m = x[:, 3:4]
        if self.encoding == "pair":
            both = torch.cat([(rgb - self.mean) / self.std, (rgb * m - self.mean) / self.std])
            f = self._embed(both)
            return torch.cat(f.chunk(2), 1)
        return self._embed(torch.cat([(rgb - self.mean) / self.std, (m - GRAY_MEAN) / GRAY_STD], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of P(good), shape N."""
        return self.fc(self.features(x)).squeeze(1)

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.fc.parameters())


def build(task: str, encoding: str | None, image_size: int, backbone_weights: str | Path | None
          ) -> QualityClassifier:
    """A classifier on the ImageNet backbone from `backbone_weights`, head freshly initialised."""
    return QualityClassifier(task, encoding, image_size, load_backbone_state(backbone_weights))


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)
