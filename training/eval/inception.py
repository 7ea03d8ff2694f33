"""clean-fid's Inception features from a local torchscript file (clean mode), batched on GPU when present.

clean-fid would download `inception-2015-12-05.pt` into /tmp; here the file is given. Images are resized the
clean-fid way (`cleanfid.resize.build_resizer("clean")`: PIL bicubic per channel in float, no quantisation),
so sets of mixed sizes are handled exactly as clean-fid handles them. The forward pass is clean-fid's
`InceptionV3W` clean path: `layers((x - 128) / 128)` on 299x299 inputs in [0, 255]. Any torchscript module
with that `layers` attribute works (the tests use a tiny one).
"""
from __future__ import annotations

import hashlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from cleanfid.resize import build_resizer

from l2i_pipeline.core.errors import InputError
from training.eval.sources import Item, decode_rgb


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


class InceptionFeatures:
    """`__call__(items) -> (n, d) float32`; `digest` names the weights (cache keys use it)."""

    def __init__(self, path: str | Path, device: str = "auto", workers: int = 4):
        self.path = Path(path)
        self.digest = sha256_file(self.path)
        self.device = resolve_device(device)
        try:
            with warnings.catch_warnings():  # the file is torchscript; torch's deprecation note is not for users
                warnings.simplefilter("ignore", FutureWarning)
                self.model = torch.jit.load(str(self.path), map_location=self.device).eval()
        except RuntimeError as e:
            raise InputError(f"--inception {self.path} is not a torchscript file: {e}") from None
        if not hasattr(self.model, "layers"):
            raise InputError(f"--inception {self.path} has no `layers` module: expected inception-2015-12-05.pt")
        self.resize = build_resizer("clean")
        self.pool = ThreadPoolExecutor(max(1, workers))

    def _prepare(self, data: bytes) -> np.ndarray:
        return self.resize(decode_rgb(data)).astype(np.float32).transpose(2, 0, 1)  # 3 x 299 x 299 in [0, 255]

    @torch.no_grad()
    def features(self, images: list[np.ndarray]) -> np.ndarray:
        """Features of already resized float images (3 x 299 x 299, [0, 255])."""
        x = torch.from_numpy(np.stack(images)).to(self.device)
        return self.model.layers.forward((x - 128) / 128).flatten(1).float().cpu().numpy()

    def __call__(self, items: list[Item]) -> np.ndarray:
        return self.features(list(self.pool.map(self._prepare, [data for _, data, _ in items])))
