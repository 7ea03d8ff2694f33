"""Classical saliency on generated cases: mask IoU on composed scenes with a known object, and how many
no-object images (flat, gradient, noise, texture) still get a mask. Prints figures, asserts nothing.

    python bench/bench_saliency_evidence.py [--scenes 96] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l2i_pipeline.demo.saliency_cases import composed_scenes, no_object_cases  # noqa: E402
from stages.base import sample_seed  # noqa: E402
from stages.saliency_classical import classical_mask  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0, help="run seed: GrabCut's draws come from it and the scene")
    ap.add_argument("--min-area", type=float, default=0.01, help="layers.min_area (below it: rejected)")
    args = ap.parse_args()
    ious, empty = [], 0
    for i, (img, truth) in enumerate(composed_scenes(args.scenes)):
        m = classical_mask(img, seed=sample_seed(f"scene{i}", args.seed)) > 0.1
        empty += m.mean() < args.min_area
        ious.append((m & truth).sum() / max((m | truth).sum(), 1))
    ious = np.array(ious)
    print(f"composed scenes: {len(ious)}, mean IoU {ious.mean():.4f}, median {np.median(ious):.4f}, "
          f"IoU<0.5: {(ious < 0.5).sum()}, rejected (area < min_area): {empty}")
    kept = []
    for name, img in no_object_cases().items():
        area = float((classical_mask(img, seed=0) > 0.1).mean())
        if area >= args.min_area:
            kept.append(f"{name}({area:.2f})")
    print(f"no-object images: {len(no_object_cases())}, still given a mask >= min_area: {len(kept)} {' '.join(kept)}")


if __name__ == "__main__":
    main()
