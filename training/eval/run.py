"""`evaluate(cfg)`: every metric whose weights are present, the rest named as skipped; `dataset_only(cfg)`: Table V.

Usable from Python (the demo calls it) as from `l2i eval`. Per-image results are cached under
`OUT/features/` (each extraction a job on the frame: eval/features.py), reference statistics under
`OUT/ref_stats/` (or `ref_cache`), so a rerun resumes and a second model against the same reference sets
extracts only its own samples. OUT (and `ref_cache`) is a local path or a storage URL: every file is one
whole-object put through the storage layer, and the command holds OUT's output lock around all its jobs
(core/lock.py `output_lock`), so a second run into the same OUT is refused while one runs. Settings:
eval/config.py.
"""
from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from PIL import Image

from l2i_pipeline.core.errors import ConfigError, InputError, NotFound
from l2i_pipeline.core.lock import output_lock
from l2i_pipeline.core.storage import Store, open_store
from l2i_pipeline.engine.executor import executor_for
from training.eval import fid as fidlib
from training.eval import report as rep
from training.eval import weights
from training.eval.config import EvalConfig
from training.eval.features import extract
from training.eval.sources import ImageSet, SampleDir, l2i_set, la_set, ll2ie_set, read_sample_dir

log = logging.getLogger(__name__)
IsTest = Callable[[str, float, int], bool]
LABELS = {"ll2ie": "LL2I-E", "la": "LA"}


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("clean-fid", "torch", "transformers", "numpy", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _location(url: str) -> str:
    return url if "://" in url else str(Path(url).expanduser())


def _out_dir(cfg: EvalConfig, storage_options: dict | str | None) -> Store:
    """OUT (a path or URL) opened with the --storage-options and checked writable before any work."""
    out = open_store(_location(cfg.out), storage_options)
    out.check_writable()
    return out


def _weights(cfg: EvalConfig) -> tuple[dict[str, weights.Need], list[str]]:
    found = weights.needs(cfg.inception, cfg.clip, cfg.icon_weights)
    weights.require_given(found)
    skipped = [n.skipped_line() for k, n in found.items() if not n.present and k != "icon"]
    if cfg.strict and skipped:
        raise NotFound("--strict: " + "; ".join(skipped))
    return found, skipped


def _resolution(sd: SampleDir) -> int | str | None:
    """The side of the first readable composite (WxH when not square)."""
    for sid in sd.ids:
        try:
            with Image.open(io.BytesIO(sd.composite(sid))) as im:
                return im.width if im.width == im.height else f"{im.width}x{im.height}"
        except (OSError, ValueError):
            continue
    return None


def _mean_std(values: np.ndarray) -> dict:
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size)} if v.size else {}


def _cached(cfg: EvalConfig, out: Store, tag: str, s: ImageSet, compute, factory, desc: str, warnings: list[str],
            batch_size: int | None = None) -> np.ndarray:
    """Per-image rows of `s` from the cache, computing the missing ones (a job on the frame: eval/features.py)."""
    executor = executor_for(cfg.runner, cfg.ray_address, None, cfg.actors)
    rows, bad, missing = extract(out, tag, s, compute, factory, batch_size or cfg.batch_size, desc, executor,
                                 cfg.runner != "ray", cfg.device, cfg.actors)
    if bad:
        key, why = next(iter(bad.items()))
        warnings.append(f"{desc}: {len(bad)} image(s) could not be read and were left out (first: {key}: {why})")
    if missing:
        warnings.append(f"{desc}: {len(missing)} unit(s) of the feature cache left unwritten ({', '.join(missing)})")
    return rows


def _fid(cfg: EvalConfig, out: Store, samples: ImageSet, refs: list[ImageSet], warnings: list[str],
         storage_options: dict | str | None) -> dict:
    from training.eval.inception import InceptionFeatures

    ext = InceptionFeatures(cfg.inception, cfg.device, cfg.workers)
    make = partial(InceptionFeatures, cfg.inception, cfg.device, cfg.workers)
    tag = f"inception-{ext.digest[:12]}"
    feats = _cached(cfg, out, f"samples-{tag}", samples, ext, make, "inception: samples", warnings)
    if len(feats) < 2:
        warnings.append(f"FID: skipped, {len(feats)} sample image(s) could be read (needs at least 2)")
        return {}
    if w := fidlib.small_set_warning(len(feats), feats.shape[1], "samples"):
        warnings.append(w)
    mu, sigma = fidlib.stats(feats)
    results = {}
    ref_dir = open_store(_location(cfg.ref_cache), storage_options) if cfg.ref_cache else out.child("ref_stats")
    for s in refs:
        if len(s.keys) < 2:
            warnings.append(f"FID {LABELS[s.name]}: skipped, the reference set has {len(s.keys)} image(s) "
                            "(needs at least 2)")
            continue
        mu_r, sigma_r, n_ref, reused = fidlib.cached_ref_stats(
            ref_dir, s.name, ext.digest, s.fingerprint,
            lambda s=s: _cached(cfg, out, f"{s.name}-{tag}", s, ext, make, f"inception: {s.name}", warnings))
        if w := fidlib.small_set_warning(n_ref, feats.shape[1], f"reference {LABELS[s.name]}"):
            warnings.append(w)
        results[f"fid_{s.name}"] = {"value": fidlib.fid(mu, sigma, mu_r, sigma_r), "n_samples": len(feats),
                                    "n_ref": n_ref, "ref_stats_reused": reused, "extractor_sha256": ext.digest}
    return results


def _stores(cfg: EvalConfig, storage_options: dict | str | None) -> tuple[Store | None, Store | None]:
    """--real and --la opened with the --storage-options (kept out of EvalConfig: never in metrics.json)."""
    return tuple(open_store(u, storage_options) if u else None for u in (cfg.real, cfg.la))


def _reference_sets(cfg: EvalConfig, is_test: IsTest | None, warnings: list[str],
                    storage_options: dict | str | None = None) -> list[ImageSet]:
    refs = []
    real, la = _stores(cfg, storage_options)
    if real:
        refs.append(ll2ie_set(real, cfg.test_fraction, cfg.split_seed, cfg.max_real, is_test))
        if not refs[0].keys:
            warnings.append(f"LL2I-E is empty: no ok sample of {cfg.real} falls in the held-out split "
                            f"(test_fraction={cfg.test_fraction}, split_seed={cfg.split_seed})")
    if cfg.la:
        if not cfg.real:
            warnings.append("LA: no --real given, so images that are also in L2I could not be excluded")
        refs.append(la_set(la, real, cfg.max_real))
    return refs


def _iou(cfg: EvalConfig, out: Store, sd: SampleDir, samples: ImageSet, found: dict, metrics: dict, skipped: list[str],
         warnings: list[str]) -> None:
    """IOU of m̂ against the saliency of the composite (ICON, else classical) and against human masks."""
    from training.eval.iou import SaliencyIou, human_iou

    sal_args = (sd.store, cfg.icon_weights, cfg.icon_variant, cfg.device, min(cfg.batch_size, 16))
    sal = SaliencyIou(*sal_args)
    if not found["icon"].present:
        skipped.append(found["icon"].skipped_line() + "; IOU measured against the classical backend instead")
    values = _cached(cfg, out, f"iou-{sal.key}", samples, sal, partial(SaliencyIou, *sal_args), f"IOU vs {sal.label}",
                     warnings, min(cfg.batch_size, 16))
    metrics["iou_saliency"] = {**_mean_std(values), "reference": sal.label, "icon": found["icon"].present,
                               "saliency": sal.describe()}
    if cfg.human_masks:
        h = human_iou(sd.store, samples.keys, cfg.human_masks)
        if h:
            metrics["iou_human"] = _mean_std(np.array(list(h.values())))
        else:
            warnings.append(f"IOU (human): no <id>.png in {cfg.human_masks} matches a sample id")
    else:
        skipped.append("IOU (human): skipped, needs human masks (--human-masks DIR of <id>.png)")


def evaluate(cfg: EvalConfig, is_test: IsTest | None = None, storage_options: dict | str | None = None,
             lock: bool = True) -> dict:
    """Compute the metrics for `cfg.samples`, write metrics.json / .md / .png into `cfg.out` (a path or URL),
    return the report. `lock`: hold OUT's output lock (a second concurrent run into it is refused)."""
    cfg.validate()
    if not cfg.samples:
        raise ConfigError("--samples SAMPLE_DIR is required (or --dataset-only)")
    if cfg.human_masks and not Path(cfg.human_masks).is_dir():
        raise NotFound(f"--human-masks {cfg.human_masks} not found (expected a dir of <id>.png)")
    found, skipped = _weights(cfg)
    sd = read_sample_dir(cfg.samples, cfg.max_samples, storage_options)
    out = _out_dir(cfg, storage_options)
    with output_lock(out, "eval", enabled=lock):
        return _evaluate(cfg, out, sd, found, skipped, is_test, storage_options)


def _evaluate(cfg: EvalConfig, out: Store, sd: SampleDir, found: dict, skipped: list[str], is_test: IsTest | None,
              storage_options: dict | str | None) -> dict:
    warnings: list[str] = []
    if sd.missing:
        warnings.append(f"{len(sd.missing)} samples without composite.png left out")
    samples = sd.image_set()
    resolution = _resolution(sd)
    metrics: dict = {}
    if found["fid"].present:
        refs = _reference_sets(cfg, is_test, warnings, storage_options)
        if refs:
            metrics.update(_fid(cfg, out, samples, refs, warnings, storage_options))
        else:
            warnings.append("FID: skipped, no reference set (give --real and/or --la)")
    if found["clip"].present:
        from training.eval.clip_score import ClipScorer

        scorer = ClipScorer(cfg.clip, cfg.device)
        make = partial(ClipScorer, cfg.clip, cfg.device)
        metrics["clip"] = _mean_std(_cached(cfg, out, f"clip-{scorer.digest[:12]}", samples, scorer, make,
                                            "CLIP score", warnings))
    if any(sd.has_mask(sid) for sid in sd.ids):
        _iou(cfg, out, sd, samples, found, metrics, skipped, warnings)
    else:
        skipped.append("IOU: not applicable, the samples have no mask.png (a plain text-to-image model)")
    report = {"name": cfg.name or sd.name, "samples": sd.given, "out": _shown(cfg, out),
              "n_samples": len(samples.keys), "resolution": resolution, "metrics": metrics, "skipped": skipped,
              "warnings": warnings, "settings": asdict(cfg), "versions": _versions()}
    _write(out, report, rep.model_markdown(report))
    out.put("metrics.png", rep.plot(report))
    return report


def dataset_only(cfg: EvalConfig, storage_options: dict | str | None = None, lock: bool = True) -> dict:
    """Table V: CLIP score of captions vs images, mean ± std, for L2I (`real`) and LAION-A (`la`, not in L2I)."""
    cfg.validate()
    if not cfg.real and not cfg.la:
        raise ConfigError("--dataset-only needs --real L2I_DIR and/or --la RAW_DIR")
    found, skipped = _weights(cfg)
    out = _out_dir(cfg, storage_options)
    with output_lock(out, "eval", enabled=lock):
        dataset: dict = {}
        warnings: list[str] = []
        if found["clip"].present:
            from training.eval.clip_score import ClipScorer

            scorer = ClipScorer(cfg.clip, cfg.device)
            make = partial(ClipScorer, cfg.clip, cfg.device)
            sets = []
            real, la = _stores(cfg, storage_options)
            if real:
                sets.append(("l2i", l2i_set(real, cfg.max_real)))
            if la:
                sets.append(("laion_a", la_set(la, real, cfg.max_real)))
            for key, s in sets:
                if not s.keys:
                    raise InputError(f"{key}: no images to score")
                dataset[key] = _mean_std(_cached(cfg, out, f"clip-{key}-{scorer.digest[:12]}", s, scorer, make,
                                                 f"CLIP score: {key}", warnings))
        report = {"name": cfg.name or "dataset", "out": _shown(cfg, out), "dataset": dataset, "skipped": skipped,
                  "warnings": warnings, "settings": asdict(cfg), "versions": _versions()}
        _write(out, report, rep.dataset_markdown(report))
    return report


def _shown(cfg: EvalConfig, out: Store) -> str:
    """OUT as the report names it: a local path as given (~ expanded), a URL as the store spells it."""
    return out.url if "://" in cfg.out else _location(cfg.out)


def _write(out: Store, report: dict, markdown: str) -> None:
    out.put("metrics.json", (json.dumps(report, indent=2) + "\n").encode())
    out.put("metrics.md", markdown.encode())
    log.info("wrote %s, %s", out.url_of("metrics.json"), out.url_of("metrics.md"))
