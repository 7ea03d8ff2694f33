"""`l2i eval` feature-extraction throughput: images/s of each metric's extractor, CPU here, GPU when present.

    python3 bench/bench_eval.py                    # CPU (device auto), 256x256 composites
    python3 bench/bench_eval.py --device cuda --batch 128 --n 1024

Inception: a randomly initialised Inception-v3 of the same architecture as `inception-2015-12-05.pt`
(torchvision's, cut at the 2048-d pool and saved as torchscript), run through the production
`InceptionFeatures` path (PNG decode, clean-fid's resize to 299, forward), and the forward alone.
CLIP: a random CLIP ViT-L/14 (projected image features at 224), through `ClipScorer.image_embeds`.
Saliency: the classical backend on the composite (the offline IOU reference). FID: the 2048-d distance.
Weights are random, so the figures are speed only. Prints figures, asserts nothing.
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.eval.fid import fid_from_feats
from training.eval.inception import InceptionFeatures, resolve_device


class _Trunk(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=False, init_weights=False)
        names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                 "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                 "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"]
        self.layers = torch.nn.Sequential(*[getattr(net, n) for n in names], torch.nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - 128) / 128)


def _pngs(n: int, size: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def _rate(fn, n: int, sync: bool) -> float:
    t0 = time.perf_counter()
    fn()
    if sync:
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n", type=int, default=64, help="images per measurement")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=256, help="composite side (the paper evaluates 256²)")
    ap.add_argument("--skip-clip", action="store_true", help="skip the ViT-L/14 measurement (slow to build on CPU)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    sync = device.type == "cuda"
    print(f"device={device} threads={torch.get_num_threads()} n={args.n} batch={args.batch} size={args.size}")
    pngs = _pngs(args.n, args.size)
    items = [(str(i), d, "a photo") for i, d in enumerate(pngs)]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inception-2015-12-05.pt"
        torch.jit.script(_Trunk().eval()).save(str(path))
        ext = InceptionFeatures(path, str(device))
        ext(items[:2])  # warm-up
        feats = []
        rate = _rate(lambda: [feats.append(ext(items[i:i + args.batch])) for i in range(0, args.n, args.batch)],
                     args.n, sync)
        print(f"inception end to end (decode + clean resize + forward): {rate:.1f} img/s")
        prepared = [ext._prepare(d) for d in pngs[: args.batch]]
        rate = _rate(lambda: ext.features(prepared), len(prepared), sync)
        print(f"inception forward only, batch {len(prepared)}: {rate:.1f} img/s")
        t0 = time.perf_counter()
        prepared = [ext._prepare(d) for d in pngs]
        print(f"decode + clean-fid resize, one thread: {args.n / (time.perf_counter() - t0):.1f} img/s")

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2500, 2048)), rng.normal(size=(2500, 2048))
    t0 = time.perf_counter()
    fid_from_feats(a, b)
    print(f"FID of two 2500 x 2048 feature sets (stats + sqrtm): {time.perf_counter() - t0:.1f} s")

    from stages.config import SaliencyConfig
    from stages.saliency_classical import ClassicalSaliency

    sal = ClassicalSaliency(SaliencyConfig())
    images = [np.asarray(Image.open(io.BytesIO(d)).convert("RGB")) for d in pngs[:8]]
    print(f"classical saliency (IOU reference), {args.size}²: {_rate(lambda: sal.predict(images), 8, False):.1f} img/s")

    if not args.skip_clip:
        from transformers import CLIPConfig, CLIPModel

        cfg = CLIPConfig(text_config={"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                                      "num_hidden_layers": 12},
                         vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                                        "num_hidden_layers": 24, "patch_size": 14, "image_size": 224},
                         projection_dim=768)
        model = CLIPModel(cfg).eval().to(device)
        px = torch.randn(min(args.batch, 8), 3, 224, 224, device=device)
        with torch.no_grad():
            model.get_image_features(pixel_values=px[:1])
            rate = _rate(lambda: model.get_image_features(pixel_values=px), len(px), sync)
        print(f"CLIP ViT-L/14 image features (random weights), batch {len(px)}: {rate:.1f} img/s")


if __name__ == "__main__":
    main()
