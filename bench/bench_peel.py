"""Peeling (issue 26) on scenes with known objects. Prints figures, asserts nothing.

Scenes (l2i_pipeline/demo/peel_scenes.py): 1, 2 and 3 objects, apart (separate components) or overlapping
(each covers part of the one behind), as flat shapes on a calm background ("shapes") and as shapes filled
with recoloured photo crops on photos and textures ("photos"). Each scene goes through the pipeline's own
stages (saliency, layers, inpaint, peel) with `layers.count=4`, so a depth above the number of objects
shows as a wrong depth too. For each backend and kind it prints:
- depth right: the share of scenes whose depth equals the number of objects;
- per-layer IoU: layer k's binarised mask against the object it matches best (one object per layer,
  greedy by IoU), averaged over the scenes that have a layer k; a missing layer counts 0 in "recall IoU";
- order right (overlapping scenes only): the share whose layer k matches object k (front to back);
- ms per scene (wall, one process), and the passes of saliency and inpainting per scene.

The truth is each object's visible mask: a back object's layer cut from the inpainted background may
also cover what the inpainting made of its hidden part, which lowers its IoU.

    python bench/bench_peel.py [--scenes 8] [--backends classical,u2netp] [--size 256] [--inpaint telea]
                               [--set KEY=VALUE ...]

`--set layers.split=occlusion` measures the cut of one region into overlapping objects (stages/overlap.py);
the README's table has both settings.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l2i_pipeline.core.sample import Sample  # noqa: E402
from l2i_pipeline.demo.peel_scenes import photo_scene, shape_scene  # noqa: E402
from l2i_pipeline.engine.runner import build_stages  # noqa: E402
from stages.config import load_config  # noqa: E402

KINDS = {"shapes": shape_scene, "photos": photo_scene}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def match(layers: list[np.ndarray], objects: list[np.ndarray]) -> list[tuple[int, float]]:
    """(object index, IoU) per layer, greedy by IoU, one object per layer (-1, 0.0: none left)."""
    pairs = sorted(((_iou(m, o), k, j) for k, m in enumerate(layers) for j, o in enumerate(objects)), reverse=True)
    out: dict[int, tuple[int, float]] = {}
    used: set[int] = set()
    for iou, k, j in pairs:
        if k not in out and j not in used:
            out[k], _ = (j, iou), used.add(j)
    return [out.get(k, (-1, 0.0)) for k in range(len(layers))]


def run_scene(stages, img: np.ndarray, key: str, threshold: float) -> tuple[list[np.ndarray] | None, dict]:
    s = Sample(key, "bench", image=img)
    out = [s]
    for st in stages:
        out = st.run(out)
    s = out[0]
    if not s.ok:
        return None, {"reason": s.reason}
    masks = [s.mask > threshold] + [p.mask > threshold for p in s.peels]
    passes = 1 + sum(1 for e in s.meta.get("peel", []) if e.get("source") == "saliency" or
                     str(e.get("stopped", "")).startswith("saliency"))
    return masks, {"saliency_passes": passes, "inpaint_passes": len(masks)}


def bench(backend: str, kind: str, scenes: int, size: int, inpaint: str, sets: list[str]) -> dict:
    cfg = load_config(None, [f"resolution={size}", f"saliency.backend={backend}", f"inpaint.backend={inpaint}",
                             "layers.count=4", *sets])
    stages = build_stages(cfg)[1:-1]  # no decode (the scene is given), no encode
    rows = []
    t0 = time.perf_counter()
    for n in (1, 2, 3):
        for overlap in ((False,) if n == 1 else (False, True)):
            for i in range(scenes):
                img, objects = KINDS[kind](1000 * n + 100 * overlap + i, n, size, overlap)
                masks, info = run_scene(stages, img, f"{kind}{n}{overlap}{i}", cfg.layers.threshold)
                rows.append({"n": n, "overlap": overlap, "masks": masks, "objects": objects, **info})
    ms = (time.perf_counter() - t0) * 1000 / len(rows)
    return {"rows": rows, "ms": ms}


def summarise(result: dict) -> list[str]:
    lines = []
    groups = [(n, ov) for n in (1, 2, 3) for ov in ((False,) if n == 1 else (False, True))]
    for n, ov in groups:
        rows = [r for r in result["rows"] if r["n"] == n and r["overlap"] == ov]
        depth = [len(r["masks"]) if r["masks"] else 0 for r in rows]
        right = np.mean([d == n for d in depth])
        per_layer, recall, order = [], [], []
        for k in range(n):
            have = [match(r["masks"], r["objects"])[k][1] for r in rows if r["masks"] and len(r["masks"]) > k]
            per_layer.append(f"{np.mean(have):.2f}" if have else "  - ")
            recall.append(np.mean([match(r["masks"], r["objects"])[k][1] if r["masks"] and len(r["masks"]) > k
                                   else 0.0 for r in rows]))
        if ov:
            order = [all(j == k for k, (j, _) in enumerate(match(r["masks"], r["objects"])[:n]))
                     for r in rows if r["masks"] and len(r["masks"]) >= n]
        rejected = sum(1 for r in rows if r["masks"] is None)
        hist = np.bincount(depth, minlength=5)
        lines.append(f"  {n} {'overlap' if ov else 'apart  '} {len(rows):>4} {right:>8.0%}   "
                     f"{' '.join(f'{h:>2}' for h in hist)}   {' '.join(per_layer):<16} "
                     f"{' '.join(f'{x:.2f}' for x in recall):<16} "
                     f"{(f'{np.mean(order):.0%}' if order else '-') if ov else '':>6} {rejected:>4}")
    ok = [r for r in result["rows"] if r["masks"]]
    right = np.mean([bool(r["masks"]) and len(r["masks"]) == r["n"] for r in result["rows"]])
    sal, inp = np.mean([r["saliency_passes"] for r in ok]), np.mean([r["inpaint_passes"] for r in ok])
    lines.append(f"  all: depth right {right:.0%} of {len(result['rows'])}; {result['ms']:.0f} ms per scene; "
                 f"passes per scene: saliency {sal:.2f}, inpaint {inp:.2f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=8, help="scenes per (objects, apart/overlap) group")
    ap.add_argument("--backends", default="classical,u2netp")
    ap.add_argument("--kinds", default="shapes,photos")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--inpaint", default="telea")
    ap.add_argument("--set", action="append", default=[], help="more config, e.g. layers.max_inpainted_share=1")
    args = ap.parse_args()
    print(f"peeling with layers.count=4 {' '.join(args.set)}, {args.size} px, inpaint {args.inpaint}, "
          f"{args.scenes} scenes per group")
    for kind in args.kinds.split(","):
        for backend in args.backends.split(","):
            result = bench(backend, kind, args.scenes, args.size, args.inpaint, args.set)
            print(f"\n{kind} / {backend}")
            print("  objects     scenes  depth ok  depth 0..4 hist  IoU per layer    recall IoU      order  rej")
            print("\n".join(summarise(result)))


if __name__ == "__main__":
    main()
