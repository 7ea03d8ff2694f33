"""Fréchet distance of two feature sets (clean-fid's implementation) and cached reference statistics.

Reference statistics (mu, Sigma) of LL2I-E and LA are computed once per set and extractor and kept in
`<ref cache>/<set>-<extractor digest>-<set fingerprint>.npz` (a local dir or a storage URL, one whole-object
put), never in site-packages; a rerun, or another model evaluated against the same set, loads them instead
of extracting 20K images again.
"""
from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable

import numpy as np
from cleanfid.fid import frechet_distance

from l2i_pipeline.core.storage import Store, as_store

log = logging.getLogger(__name__)

PAPER_SET_SIZE = 20_000  # LL2I-E and LA in section V-B


def stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As clean-fid's `fid_from_feats`: mean and unbiased covariance in float64."""
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def fid(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    return float(frechet_distance(mu1, sigma1, mu2, sigma2))


def fid_from_feats(a: np.ndarray, b: np.ndarray) -> float:
    return fid(*stats(a), *stats(b))


def small_set_warning(n: int, dim: int, what: str) -> str | None:
    """A warning when `n` images are too few for a stable FID (the paper uses 20K per set)."""
    if n >= PAPER_SET_SIZE:
        return None
    rank = f"; below {dim}, the feature dimension, the covariance is singular" if n < dim else ""
    return (f"{what}: FID from {n} images is biased high and not comparable with the paper's "
            f"({PAPER_SET_SIZE} per set){rank}")


def cached_ref_stats(cache_dir: str | os.PathLike | Store, set_name: str, extractor_digest: str, fingerprint: str,
                     compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """(mu, sigma, n, reused): load the statistics, or compute the features once and store them."""
    store = as_store(cache_dir)
    name = f"{set_name}-{extractor_digest[:12]}-{fingerprint[:12]}.npz"
    if store.exists(name):
        with np.load(io.BytesIO(store.get(name))) as z:
            log.info("reference statistics for %s reused from %s", set_name, store.url_of(name))
            return z["mu"], z["sigma"], int(z["n"]), True
    feats = compute()
    mu, sigma = stats(feats)
    meta = json.dumps({"set": set_name, "extractor_sha256": extractor_digest, "fingerprint": fingerprint})
    buf = io.BytesIO()
    np.savez(buf, mu=mu, sigma=sigma, n=len(feats), meta=np.array(meta))
    store.put(name, buf.getvalue())
    return mu, sigma, len(feats), False
