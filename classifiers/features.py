"""Pixels in, frozen features out: decode shard members, prepare classifier inputs, batch them.

Inputs are prepared on the CPU as small uint8 arrays (H x W x C at the classifier's resolution: RGB of I
plus m for `mask`, RGB of B for `inpaint`); the device does the float conversion. Sidecar scoring and
inline scoring (stages/score.py) share `prepare`, so both see the same pixels up to JPEG coding of I.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np
import torch

from classifiers.model import QualityClassifier
from l2i_pipeline.formats import mask8
from l2i_pipeline.formats.decode import COLOR, GRAY, decode_image
from l2i_pipeline.formats.names import BG, JPG, MASK

TASK_MEMBERS = {"mask": (JPG, MASK), "inpaint": (BG,)}  # the members each classifier reads


def decode_members(members: dict[str, bytes], task: str) -> dict[str, np.ndarray]:
    """The arrays a task needs from one sample's tar members: I and m for mask, B for inpaint."""
    if task == "mask":
        return {"image": decode_image(members[JPG], COLOR, JPG), "mask": decode_image(members[MASK], GRAY, MASK)}
    return {"bg": decode_image(members[BG], COLOR, BG)}


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    if a.shape[0] == size and a.shape[1] == size:
        return a
    return cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA)


def mask_to_uint8(mask: np.ndarray) -> np.ndarray:
    """m as stored in shards: 8-bit. Float masks in [0, 1] (inside the pipeline) are quantised the same way."""
    if mask.dtype == np.uint8:
        return mask
    return mask8.encode(mask.astype(np.float32))


def prepare(task: str, size: int, image: np.ndarray | None = None, mask: np.ndarray | None = None,
            bg: np.ndarray | None = None) -> np.ndarray:
    """uint8 size x size x C input of one sample (C = 4 for mask: RGB + m; 3 for inpaint: RGB of B)."""
    if task == "mask":
        if image is None or mask is None:
            raise ValueError("mask classifier needs the image and the mask")
        m = mask_to_uint8(mask[..., 0] if mask.ndim == 3 else mask)
        return np.concatenate([_resize(image, size), _resize(m, size)[..., None]], axis=2)
    if bg is None:
        raise ValueError("inpaint classifier needs the inpainted background")
    return _resize(bg, size)


def to_tensor(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """N x H x W x C uint8 -> N x C x H x W float in [0, 1] on device (the copy is uint8: 4x smaller)."""
    t = torch.from_numpy(np.ascontiguousarray(batch)).to(device, non_blocking=True)
    return t.permute(0, 3, 1, 2).float().div_(255.0)


def batched(items: Iterable, n: int) -> Iterator[list]:
    chunk = []
    for it in items:
        chunk.append(it)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@torch.no_grad()
def extract(model: QualityClassifier, inputs: np.ndarray, device: torch.device, batch_size: int = 64,
            autocast: bool = True, progress: bool = False) -> np.ndarray:
    """Frozen features of prepared inputs (N x H x W x C uint8) as float32 N x feature_dim."""
    from tqdm import tqdm

    model.eval().to(device)
    use_amp = autocast and device.type == "cuda"
    out = []
    starts = range(0, len(inputs), batch_size)
    for i in tqdm(starts, desc=f"{model.task} features", unit="batch", disable=not progress):
        x = to_tensor(inputs[i:i + batch_size], device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            out.append(model.features(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.feature_dim), np.float32)


@torch.no_grad()
def predict(model: QualityClassifier, inputs: np.ndarray, device: torch.device, batch_size: int = 64,
            autocast: bool = True) -> np.ndarray:
    """P(good) per prepared input, float32 N."""
    model.eval().to(device)
    use_amp = autocast and device.type == "cuda"
    out = []
    for i in range(0, len(inputs), batch_size):
        x = to_tensor(inputs[i:i + batch_size], device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            out.append(torch.sigmoid(model(x).float()).cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)
