"""Score sidecars are committed as shards are: the parquet, then `NAME_scores.json` with its size and sha256;
a torn sidecar is rescored by a rerun, a same-size foreign write is an error naming the file, an older
sidecar without a marker is read as it is."""
import hashlib
import json

import pytest

from l2i_pipeline.cli import main
from l2i_pipeline.core import shards
from l2i_pipeline.core.errors import InputError
from l2i_pipeline.core.sidecars import read_sidecar, sidecar_location, torn_sidecar, write_sidecar
from l2i_pipeline.core.storage import open_store


def test_a_sidecar_has_a_marker_and_the_reader_checks_it(tmp_path):
    scores = {"a": {"mask_score": 0.25, "inpaint_score": 0.5}, "b": {"mask_score": 0.75, "inpaint_score": 1.0}}
    write_sidecar(tmp_path, "00000_0000", scores, {"classifiers": {}})
    data = (tmp_path / "00000_0000_scores.parquet").read_bytes()
    marker = json.loads((tmp_path / "00000_0000_scores.json").read_text())
    assert marker["count"] == 2
    assert marker["files"] == {"00000_0000_scores.parquet": {"size": len(data),
                                                             "sha256": hashlib.sha256(data).hexdigest()}}
    assert not (tmp_path / "00000_0000_stats.json").exists()  # an L2I shard's marker is never touched
    assert read_sidecar(sidecar_location(tmp_path, "00000_0000")) == scores
    store = open_store(str(tmp_path))
    assert torn_sidecar(store, "00000_0000", store.list()) is None
    (tmp_path / "00000_0000_scores.parquet").write_bytes(data[:-3])
    assert "its marker 00000_0000_scores.json says" in torn_sidecar(store, "00000_0000", store.list())
    foreign = bytearray(data)
    foreign[len(data) // 2] ^= 0xFF
    (tmp_path / "00000_0000_scores.parquet").write_bytes(bytes(foreign))
    with pytest.raises(InputError, match="00000_0000_scores.parquet does not match its marker"):
        read_sidecar(sidecar_location(tmp_path, "00000_0000"))
    (tmp_path / "00000_0000_scores.parquet").write_bytes(data)
    (tmp_path / "00000_0000_scores.json").unlink()  # an older `l2i score`'s sidecar
    assert read_sidecar(sidecar_location(tmp_path, "00000_0000")) == scores


def test_a_torn_sidecar_is_rescored_and_the_others_kept(trained, make_l2iu, tmp_path):
    d = tmp_path / "l2iu"
    make_l2iu(d, n_shards=2, per_shard=3, seed=5)
    argv = ["score", "--runner", "local", "--input", str(d), "--mask-classifier", str(trained["mask"]),
            "--inpaint-classifier", str(trained["inpaint"]), "--device", "cpu", "--batch-size", "2"]
    assert main(argv) == 0
    a, b = (d / f"{n}_scores.parquet" for n in shards.list_output_shards(d))
    good, kept = b.read_bytes(), a.stat().st_mtime_ns
    b.write_bytes(good[:-4])  # another size than its marker says
    assert main(argv) == 0
    assert b.read_bytes() == good and a.stat().st_mtime_ns == kept
