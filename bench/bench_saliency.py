"""Saliency backends on cases with known answers. Prints figures, asserts nothing.

For each backend (classical, u2netp, and icon when `--icon-weights` is given), through the saliency stage
and its no-object gate:
- mask IoU on object scenes (whole objects cut from scikit-image photos with U²-Netp's confident masks on the
  full photos, pasted on other photos and textures) and on shape scenes (random shapes cut from photos);
  a rejected scene counts IoU 0;
- no-object images (flat colours, gradients, noise, textures) rejected, at 160, 256 and 512 px;
- scikit-image photos that keep an object at 160, 256 and 512 px (centre-cropped as the pipeline does);
- ms·core per 512² image (process CPU time, one thread).

    python bench/bench_saliency.py [--scenes 48] [--icon-weights ICON-R.weight]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import skimage.data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l2i_pipeline.core.sample import Sample  # noqa: E402
from l2i_pipeline.demo.saliency_cases import composed_scenes, no_object_cases, object_scenes  # noqa: E402
from stages.config import load_config  # noqa: E402
from stages.decode import resize_center_crop  # noqa: E402
from stages.registry import saliency_backend  # noqa: E402
from stages.saliency import SaliencyStage  # noqa: E402

SIZES = (160, 256, 512)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")


def _rgb(name: str) -> np.ndarray:
    img = getattr(skimage.data, name)()
    return np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img


def cutouts() -> list[tuple[np.ndarray, np.ndarray]]:
    """Whole objects: U²-Netp's confident mask (> 0.5) on each full photo, resized to fit 400 px."""
    import cv2

    net = saliency_backend(load_config(None, ["saliency.backend=u2netp"]))
    out = []
    for name in ("astronaut", "coffee", "camera", "rocket", "chelsea"):
        img = _rgb(name)
        s = 400 / max(img.shape[:2])
        img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        out.append((img, net.predict([img])[0] > 0.5))
    return out


def _stage(backend: str, extra: list[str]) -> SaliencyStage:
    stage = SaliencyStage(load_config(None, [f"saliency.backend={backend}", *extra]))
    stage.start()
    return stage


def _iou(stage: SaliencyStage, scenes) -> tuple[float, int]:
    ious, rejected = [], 0
    for i, (img, truth) in enumerate(scenes):
        s = stage.run([Sample(f"scene{i:04d}", "u", image=img)])[0]
        rejected += not s.ok
        m = (s.mask > 0.1) if s.ok else np.zeros_like(truth)
        ious.append((m & truth).sum() / max((m | truth).sum(), 1))
    return float(np.mean(ious)), rejected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=48)
    ap.add_argument("--backends", default="classical,u2netp")
    ap.add_argument("--icon-weights", help="an ICON-R .weight file: adds the icon backend")
    args = ap.parse_args()
    backends = [(b, []) for b in args.backends.split(",")]
    if args.icon_weights:
        backends.append(("icon", [f"saliency.weights={args.icon_weights}", "saliency.device=cpu"]))
    objects = object_scenes(cutouts(), args.scenes)
    shapes = composed_scenes(args.scenes)
    no_object = no_object_cases()
    print("| backend | object scenes IoU (rejected) | shape scenes IoU (rejected) | no-object rejected "
          f"@{'/'.join(map(str, SIZES))} | photos kept @{'/'.join(map(str, SIZES))} | ms·core / 512² image |")
    print("|---|---:|---:|---:|---:|---:|")
    for backend, extra in backends:
        stage = _stage(backend, extra)
        obj_iou, obj_rej = _iou(stage, objects)
        shape_iou, shape_rej = _iou(stage, shapes)
        rejected, kept, runs = [], [], len(no_object)
        for res in SIZES:
            batch = [Sample(f"{name}", "u", image=resize_center_crop(img, res)) for name, img in no_object.items()]
            out = stage.run(batch)
            rejected.append(sum(s.reason == "saliency:no_salient_object" for s in out))
            for s in out:
                if s.ok:
                    print(f"  {backend}: kept a mask on {s.key} at {res} px (area {(s.mask > 0.1).mean():.2f})")
            kept.append(sum(s.ok for s in stage.run([Sample(n, "u", image=resize_center_crop(_rgb(n), res))
                                                     for n in PHOTOS])))
        images = [resize_center_crop(_rgb(n), 512) for n in PHOTOS]
        t = time.process_time()
        for i, img in enumerate(images):
            stage.backend.predict([img], [i])
        ms = (time.process_time() - t) / len(images) * 1000
        print(f"| {backend} | {obj_iou:.3f} ({obj_rej}/{len(objects)}) | {shape_iou:.3f} ({shape_rej}/{len(shapes)}) "
              f"| {'/'.join(f'{r}' for r in rejected)} of {runs} | {'/'.join(map(str, kept))} of {len(PHOTOS)} "
              f"| {ms:.0f} |")


if __name__ == "__main__":
    main()
