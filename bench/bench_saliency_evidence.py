"""Classical saliency on generated cases: mask IoU on composed scenes with a known object, how many real
photos lose their object, and how many no-object images (flat, gradient, noise, texture) still get a
mask. Prints figures, asserts nothing.

    python bench/bench_saliency_evidence.py [--scenes 96] [--seed 0]
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
from pathlib import Path

import numpy as np
import skimage.data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l2i_pipeline.demo.inputs import PHOTOS  # noqa: E402
from l2i_pipeline.demo.saliency_cases import composed_scenes, no_object_cases  # noqa: E402
from stages import saliency_classical  # noqa: E402
from stages.base import sample_seed  # noqa: E402
from stages.decode import resize_center_crop  # noqa: E402


def _mask_fn(module_file: str | None, no_gate: bool):
    """classical_mask(image, seed) of this tree, or of another file (older versions take no seed)."""
    module = saliency_classical
    if module_file:
        spec = importlib.util.spec_from_file_location("saliency_under_test", module_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    if no_gate:
        module.has_evidence = lambda rgb, binary: bool(binary.any())
    if "seed" in inspect.signature(module.classical_mask).parameters:
        return module.classical_mask
    return lambda img, seed: module.classical_mask(img)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0, help="run seed: GrabCut's draws come from it and the scene")
    ap.add_argument("--photo-seeds", type=int, default=3)
    ap.add_argument("--min-area", type=float, default=0.01, help="layers.min_area (below it: rejected)")
    ap.add_argument("--no-gate", action="store_true", help="keep every GrabCut mask (the evidence gate off)")
    ap.add_argument("--saliency-module", metavar="FILE",
                    help="another saliency_classical.py to measure, e.g. main's: the figure before a change")
    args = ap.parse_args()
    mask_fn = _mask_fn(args.saliency_module, args.no_gate)
    ious, empty = [], 0
    for i, (img, truth) in enumerate(composed_scenes(args.scenes)):
        m = mask_fn(img, sample_seed(f"scene{i}", args.seed)) > 0.1
        empty += m.mean() < args.min_area
        ious.append((m & truth).sum() / max((m | truth).sum(), 1))
    ious = np.array(ious)
    print(f"composed scenes: {len(ious)}, mean IoU {ious.mean():.4f}, median {np.median(ious):.4f}, "
          f"IoU<0.5: {(ious < 0.5).sum()}, rejected (area < min_area): {empty}")
    photo_runs, photo_rejected = 0, []
    for name in PHOTOS:
        img = getattr(skimage.data, name)()
        img = np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img
        for res in (96, 128, 256, 512):
            for seed in range(args.photo_seeds):
                photo_runs += 1
                if (mask_fn(resize_center_crop(img, res), seed) > 0.1).mean() < args.min_area:
                    photo_rejected.append(f"{name}@{res}/{seed}")
    print(f"photos (scikit-image, 4 sizes x {args.photo_seeds} seeds): {photo_runs}, "
          f"rejected: {len(photo_rejected)} {' '.join(photo_rejected)}")
    kept, runs = [], 0
    for name, img in no_object_cases().items():
        for res in (None, 96, 128, 256, 512):  # None: as generated (200x160)
            runs += 1
            area = float((mask_fn(img if res is None else resize_center_crop(img, res), 0) > 0.1).mean())
            if area >= args.min_area:
                kept.append(f"{name}@{res or 'native'}({area:.2f})")
    print(f"no-object images (18 kinds x 5 sizes): {runs}, still given a mask >= min_area: {len(kept)} "
          f"{' '.join(kept)}")


if __name__ == "__main__":
    main()
