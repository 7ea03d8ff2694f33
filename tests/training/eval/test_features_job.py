"""`l2i eval`'s per-image extraction on the job frame: cache units committed with a marker (size, sha256,
unreadable images), a torn unit redone, a foreign write refused, a key its source lacks not a lost unit."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from l2i_pipeline.core.storage import open_store
from l2i_pipeline.engine.executor import LocalExecutor
from training.eval.features import extract
from training.eval.inception import InceptionFeatures
from training.eval.run import EvalConfig, evaluate
from training.eval.sources import ImageSet


def _cfg(tmp_path, samples, l2i_dir, tiny_inception):
    return EvalConfig(samples=str(samples), real=str(l2i_dir), out=str(tmp_path / "ev"), inception=str(tiny_inception),
                      test_fraction=0.5, device="cpu", batch_size=4)


def test_units_are_committed_with_digests_and_a_torn_one_is_redone(tmp_path, make_sample_dir, l2i_dir,
                                                                   tiny_inception, monkeypatch):
    samples = make_sample_dir(tmp_path / "s", 5)
    first = evaluate(_cfg(tmp_path, samples, l2i_dir, tiny_inception))
    cache = next((tmp_path / "ev" / "features").glob("samples-inception-*"))
    assert sorted(p.name for p in cache.iterdir()) == ["unit-00000.npz", "unit-00000_stats.json"]
    marker = json.loads((cache / "unit-00000_stats.json").read_text())
    data = (cache / "unit-00000.npz").read_bytes()
    assert marker["count"] == 5 and marker["bad"] == {}
    assert marker["files"]["unit-00000.npz"] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    seen = []
    real = InceptionFeatures.features
    monkeypatch.setattr(InceptionFeatures, "features", lambda self, images: seen.append(len(images)) or
                        real(self, images))
    (cache / "unit-00000.npz").write_bytes(data[:-7])  # torn: another size than its marker says
    again = evaluate(_cfg(tmp_path, samples, l2i_dir, tiny_inception))
    assert sum(seen) == 5  # only the samples' unit, again
    assert again["metrics"]["fid_ll2ie"]["value"] == first["metrics"]["fid_ll2ie"]["value"]
    assert (cache / "unit-00000.npz").read_bytes() == data

    foreign = bytearray(data)
    foreign[-30] ^= 0xFF  # same size, other bytes
    (cache / "unit-00000.npz").write_bytes(bytes(foreign))
    with pytest.raises(Exception, match="does not match its marker"):
        evaluate(_cfg(tmp_path, samples, l2i_dir, tiny_inception))


def test_a_key_its_source_lacks_does_not_leave_the_unit_unwritten(tmp_path):
    def read(todo):
        for k in sorted(todo):
            if k != "b":
                yield k, k.encode(), ""
    s = ImageSet("x", ["a", "b", "c"], {}, "f" * 64, read)
    compute = lambda items: np.array([[float(ord(d.decode()))] for _, d, _ in items])  # noqa: E731
    out = open_store(str(tmp_path / "out"))
    rows, bad, missing = extract(out, "t", s, compute, None, 2, "toy", LocalExecutor(), True)
    assert missing == [] and bad == {} and rows.ravel().tolist() == [97.0, 99.0]
