"""CLIP score as in section V-B: the raw cosine of CLIP ViT-L/14 image and text embeddings.

Not x100 and not clipped at 0 (torchmetrics' `CLIPScore` does both, and breaks on transformers 5). Computed
directly with transformers from a local model dir; `get_*_features` return a tensor on transformers 4 and a
`BaseModelOutputWithPooling` (projected embeddings in `pooler_output`) on transformers 5, both handled.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.eval.inception import resolve_device
from training.eval.sources import Item, decode_rgb


def _embedding(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def dir_digest(path: Path) -> str:
    """Names the model for cache keys: its config and the weight files' names and sizes."""
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()


class ClipScorer:
    """`__call__(items) -> (n, 1)` cosine of each image with its caption."""

    def __init__(self, path: str | Path, device: str = "auto"):
        from transformers import CLIPModel, CLIPProcessor

        self.path = Path(path)
        self.digest = dir_digest(self.path)
        self.device = resolve_device(device)
        self.model = CLIPModel.from_pretrained(self.path).eval().to(self.device)
        self.processor = CLIPProcessor.from_pretrained(self.path)
        self.max_length = self.model.config.text_config.max_position_embeddings

    @torch.no_grad()
    def image_embeds(self, images: list[np.ndarray]) -> torch.Tensor:
        pixels = self.processor(images=[Image.fromarray(i) for i in images], return_tensors="pt")["pixel_values"]
        emb = _embedding(self.model.get_image_features(pixel_values=pixels.to(self.device)))
        return torch.nn.functional.normalize(emb.float(), dim=-1)

    @torch.no_grad()
    def text_embeds(self, texts: list[str]) -> torch.Tensor:
        tok = self.processor(text=texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        emb = _embedding(self.model.get_text_features(input_ids=tok["input_ids"].to(self.device),
                                                      attention_mask=tok["attention_mask"].to(self.device)))
        return torch.nn.functional.normalize(emb.float(), dim=-1)

    def scores(self, images: list[np.ndarray], texts: list[str]) -> np.ndarray:
        return (self.image_embeds(images) * self.text_embeds(texts)).sum(-1).cpu().numpy()

    def __call__(self, items: list[Item]) -> np.ndarray:
        return self.scores([decode_rgb(d) for _, d, _ in items], [t for _, _, t in items])[:, None]
