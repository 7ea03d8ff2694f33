"""layers.alpha: binary (the paper's cut) vs matting, on scenes with a known answer. Prints figures, asserts nothing.

Scenes (512², known F, B, alpha): a foreground cut from one scikit-image photo with a synthetic soft alpha
(feathered: a blob blurred by a random sigma; motion: a blob smeared along a random direction; hair: a
blob with hundreds of 1-px strands drawn at 4x and averaged down) composited as I = alpha F + (1 - alpha) B
over another photo. The saliency map handed to both methods is the true alpha blurred (sigma 1.5 px),
so the cut m > 0.1 reaches as far out as a saliency model's soft edge does.

Per method, within the trimap's unknown band (the pixels matting is allowed to change):
- alpha MSE and SAD (sum of |alpha - alpha_true| over the band, / 1000, as matting papers report it);
- new-background error: the extracted layer drawn over a NEW photo, alpha F' + (1 - alpha) N (binary:
  F = I, the paper's fg.png, with alpha = the cut), against the true alpha F + (1 - alpha) N; MSE in 8-bit units².
And the cost of soft_alpha per 512² scene in ms·core (process CPU time, so numba's threads count).

Variants (--variants TRIMAP:METHOD:SCALE,...): TRIMAP `fixed` (every pixel of the ±band band unknown, the
first version) or `soft` (stages/matting.py soft_trimap, the pipeline's), METHOD a pymatting alpha solver,
SCALE the matting scale. Errors are scored in the same fixed ±band band for every method. --saliency hard
hands both methods a map with no soft edge instead (the true alpha's 0.5 cut blurred by 1 px), to see
what the soft trimap does when the saliency model's edge is sharper than the object's.

    python bench/bench_matting.py [--scenes 12] [--variants fixed:cf:0.25,soft:cf:0.5] [--band 12] [--saliency hard]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.config import LayersConfig  # noqa: E402
from stages.matting import METHODS, UNKNOWN, soft_alpha, trimap  # noqa: E402

SIZE = 512
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")
KINDS = ("feathered", "motion", "hair")


def _photo(name: str, rng: np.random.Generator) -> np.ndarray:
    img = getattr(skimage.data, name)()
    img = np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3]
    s = SIZE / min(img.shape[:2]) * rng.uniform(1.0, 1.5)
    img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    y, x = rng.integers(0, img.shape[0] - SIZE + 1), rng.integers(0, img.shape[1] - SIZE + 1)
    return img[y:y + SIZE, x:x + SIZE].astype(np.float32)


def _blob(rng: np.random.Generator, scale: int = 1) -> np.ndarray:
    """A random smooth closed shape, 0/1 float at SIZE*scale."""
    n = SIZE * scale
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    r = n * (0.22 + sum(rng.uniform(-0.03, 0.03) * np.sin(k * t + rng.uniform(0, 6)) for k in (2, 3, 5)))
    cx, cy = n * rng.uniform(0.4, 0.6), n * rng.uniform(0.4, 0.6)
    pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1).astype(np.int32)
    m = np.zeros((n, n), np.uint8)
    cv2.fillPoly(m, [pts], 1)
    return m.astype(np.float32)


def _alpha(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "feathered":
        return cv2.GaussianBlur(_blob(rng), (0, 0), rng.uniform(2.0, 5.0))
    if kind == "motion":
        length, angle = int(rng.integers(9, 25)), rng.uniform(0, 180)
        k = np.zeros((length, length), np.float32)
        k[length // 2] = 1
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
        k = cv2.warpAffine(k, rot, (length, length))
        return cv2.filter2D(_blob(rng), -1, k / k.sum())
    up = 4  # hair: strands drawn at 4x, averaged down: fractional coverage like real hair
    body = _blob(rng, up)
    hair = np.zeros_like(body, np.uint8)
    ys, xs = np.nonzero(cv2.morphologyEx(body.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)))
    cy, cx = ys.mean(), xs.mean()
    for i in rng.choice(len(ys), 400, replace=False):
        y, x = ys[i], xs[i]
        d = np.array([y - cy, x - cx]) / (np.hypot(y - cy, x - cx) + 1e-6)
        bend = rng.normal(0, 0.4)
        length = rng.uniform(10, 40) * up
        pts = [(x + length * s * (d[1] + bend * s * d[0]), y + length * s * (d[0] - bend * s * d[1]))
               for s in np.linspace(0, 1, 8)]
        cv2.polylines(hair, [np.array(pts, np.int32)], False, 1, thickness=int(rng.integers(1, 4)))
    full = np.maximum(body, hair.astype(np.float32))
    return cv2.resize(full, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def scenes(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        f, b, new = (PHOTOS[(i + j) % len(PHOTOS)] for j in (0, 2, 4))
        alpha = np.clip(_alpha(KINDS[i % len(KINDS)], rng), 0, 1)
        F, B, N = _photo(f, rng), _photo(b, rng), _photo(new, rng)
        a = alpha[..., None]
        image = np.clip(np.rint(a * F + (1 - a) * B), 0, 255).astype(np.uint8)
        saliency = np.clip(cv2.GaussianBlur(alpha, (0, 0), 1.5), 0, 1)
        edge = ((alpha > 0) & (alpha < 1)) | ((saliency > LayersConfig.threshold) != (alpha > 0.5))
        out.append({"kind": KINDS[i % len(KINDS)], "image": image, "alpha": alpha, "F": F, "N": N,
                    "saliency": saliency, "edge": edge})
    return out


def _errors(sc: dict, alpha: np.ndarray, colour: np.ndarray, band: np.ndarray) -> tuple[float, ...]:
    """alpha MSE, SAD, new-background MSE in the band; then alpha MSE and new-background MSE in the scene's
    fixed edge region (true alpha strictly between 0 and 1, or the cut wrong), which does not move with
    the band, so band widths compare there."""
    d = alpha - sc["alpha"]
    a, t = alpha[..., None], sc["alpha"][..., None]
    ours = a * colour.astype(np.float32) + (1 - a) * sc["N"]
    e2 = ((ours - (t * sc["F"] + (1 - t) * sc["N"])) ** 2).mean(axis=2)
    edge = sc["edge"]
    return (float((d[band] ** 2).mean()), float(np.abs(d[band]).sum() / 1000), float(e2[band].mean()),
            float((d[edge] ** 2).mean()), float(e2[edge].mean()))


def run(n: int, variants: list[str], band_px: int, saliency: str = "blurred") -> None:
    cases = scenes(n)
    if saliency == "hard":  # a model that sees no soft edge: the true alpha's 0.5 cut, blurred by 1 px
        for sc in cases:
            sc["saliency"] = np.clip(cv2.GaussianBlur((sc["alpha"] > 0.5).astype(np.float32), (0, 0), 1.0), 0, 1)
            sc["edge"] = (((sc["alpha"] > 0) & (sc["alpha"] < 1))
                          | ((sc["saliency"] > LayersConfig.threshold) != (sc["alpha"] > 0.5)))
    base = LayersConfig(band=band_px)
    rows: dict[str, list] = {"binary": []}
    cost: dict[str, list] = {}
    for sc in cases:  # the scored band: trimap()'s fixed band, the same pixels for every method
        sc["band"] = trimap(sc["saliency"], base.threshold, band_px) == UNKNOWN
        cut = (sc["saliency"] > base.threshold).astype(np.float32)
        rows["binary"].append((sc["kind"], *_errors(sc, cut, sc["image"], sc["band"])))
    for spec in variants:
        kind, method, scale = spec.split(":")
        name = f"matting, {kind} trimap, {method}, scale {float(scale):g}"
        cfg = LayersConfig(alpha="matting", band=band_px, matting_scale=float(scale))
        opts = {"fixed_band": kind == "fixed", "method": method}
        soft_alpha(cases[0]["image"], cases[0]["saliency"], cfg, **opts)  # numba warm-up (compiles per method)
        rows[name], cost[name] = [], []
        for sc in cases:
            t = time.process_time()
            alpha, rgba = soft_alpha(sc["image"], sc["saliency"], cfg, **opts)
            cost[name].append(time.process_time() - t)
            rows[name].append((sc["kind"], *_errors(sc, alpha, rgba[..., :3], sc["band"])))
    print(f"{n} scenes of {SIZE}², kinds {', '.join(KINDS)}; saliency {saliency}; scored band ±{band_px} px\n")
    print("| method | band: alpha MSE | alpha SAD (/1000) | new-bg MSE (8-bit²) | edge region: alpha MSE | "
          "new-bg MSE | ms·core per 512² | band ratios to binary: MSE, SAD, new-bg |")
    print("|---|---|---|---|---|---|---|---|")
    ref = np.mean([r[1:] for r in rows["binary"]], axis=0)
    for name, rs in rows.items():
        m = np.mean([r[1:] for r in rs], axis=0)
        ms = f"{1000 * np.mean(cost[name]):.0f}" if name in cost else "0"
        ratio = "" if name == "binary" else f"{m[0] / ref[0]:.2f}×, {m[1] / ref[1]:.2f}×, {m[2] / ref[2]:.2f}×"
        print(f"| {name} | {m[0]:.4f} | {m[1]:.2f} | {m[2]:.1f} | {m[3]:.4f} | {m[4]:.1f} | {ms} | {ratio} |")
    print("\nby kind (alpha MSE / new-background MSE):")
    for kind in KINDS:
        parts = []
        for name, rs in rows.items():
            sel = np.array([r[1:] for r in rs if r[0] == kind])
            parts.append(f"{name}: {sel[:, 0].mean():.4f} / {sel[:, 2].mean():.1f}")
        print(f"  {kind:9s} " + "; ".join(parts))
    print("\ntargets (issue 26): matting alpha error <= 0.5x binary, new-background error <= 0.25x binary; "
          "cost <= 50 ms·core per 512²")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=12)
    p.add_argument("--variants", default=f"fixed:cf:0.25,soft:cf:0.25,soft:cf:{LayersConfig.matting_scale:g},soft:cf:1",
                   help="TRIMAP:METHOD:SCALE,... with TRIMAP fixed|soft, METHOD one of " + ",".join(METHODS))
    p.add_argument("--band", type=int, default=LayersConfig.band)
    p.add_argument("--saliency", choices=("blurred", "hard"), default="blurred",
                   help="the map both methods get: the true alpha blurred 1.5 px (default), "
                        "or its 0.5 cut blurred 1 px")
    a = p.parse_args()
    for v in a.variants.split(","):
        if len(v.split(":")) != 3 or v.split(":")[0] not in ("fixed", "soft") or v.split(":")[1] not in METHODS:
            p.error(f"--variants: {v!r} is not TRIMAP:METHOD:SCALE")
    run(a.scenes, a.variants.split(","), a.band, a.saliency)


if __name__ == "__main__":
    main()
