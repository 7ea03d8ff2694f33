"""Stock readers on L2I shards: `l2i ls` lists only complete shards; the per-sample json has one type per
field across shards (HF `datasets` infers one schema); HF's non-streaming webdataset loader reads them."""
import io
import json
import math
import tarfile

import pytest
from rawshards import make_rows, write_raw_shard

from l2i_pipeline.cli import main
from l2i_pipeline.core.commit import commit_shard
from l2i_pipeline.core.storage import open_store
from l2i_pipeline.engine.synthesize import synthesize
from l2i_pipeline.formats.names import MARKER
from stages.config import load_config

CFG = ["resolution=64", "output_shard_size=4", "layers.dilate_kernel=5"]


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _shards(store, names):
    for n in names:
        commit_shard(store, n, {".tar": _tar({f"{n}k.txt": n.encode()}), ".parquet": b"PAR1"}, {"name": n})


def _ls(capsys, *argv):
    capsys.readouterr()
    rc = main(["ls", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out.split(), out.err


def test_ls_prints_only_complete_shards(tmp_path, capsys, caplog):
    out = open_store(tmp_path / "l2i")
    _shards(out, ["a", "b", "c"])
    out.delete(f"b{MARKER}")  # b: being written (or its job crashed): no marker yet
    rc, urls, _ = _ls(capsys, tmp_path / "l2i")
    assert rc == 0 and urls == [str(tmp_path / "l2i" / "a.tar"), str(tmp_path / "l2i" / "c.tar")]
    out.put("c.tar", out.get("c.tar")[:-1024])  # c: torn, its marker left in place
    rc, urls, _ = _ls(capsys, tmp_path / "l2i")
    assert rc == 1 and urls == [str(tmp_path / "l2i" / "a.tar")]
    assert "shard c does not match its marker (c.tar is 9216 bytes" in caplog.text
    assert _ls(capsys, "--suffix", "parquet", tmp_path / "l2i")[1] == [str(tmp_path / "l2i" / "a.parquet")]
    rc, _, err = _ls(capsys, tmp_path / "none")
    assert rc == 2 and "not found" in err


def test_ls_on_a_bucket_url(s3_bucket, capsys):
    _shards(open_store(f"{s3_bucket}/l2i"), ["00000_0000", "00000_0001"])
    open_store(f"{s3_bucket}/l2i").delete(f"00000_0001{MARKER}")
    rc, urls, _ = _ls(capsys, f"{s3_bucket}/l2i", "--storage-options", "{}")
    assert rc == 0 and urls == [f"{s3_bucket}/l2i/00000_0000.tar"]


@pytest.fixture
def mixed_l2i(tmp_path):
    """Two input shards: one mostly failed downloads whose few images have no LAION values, one clean."""
    raw = tmp_path / "raw"
    unknown = {"similarity": None, "punsafe": None, "pwatermark": None, "AESTHETIC_SCORE": None, "WIDTH": None,
               "HEIGHT": None}
    failed = {"status": "failed_to_download", "error_message": "HTTP Error 404: Not Found", "image": None}
    write_raw_shard(raw, "00000", make_rows(8, extra={i: {**unknown, **(failed if i % 4 else {})} for i in range(8)}))
    write_raw_shard(raw, "00001", make_rows(4, shard=1, extra={i: {"hash": 1234567890123 + i} for i in range(4)}))
    out = tmp_path / "l2i"
    synthesize(raw, out, load_config(None, CFG), runner="local")
    return out


def _sample_jsons(out):
    found = []
    for tar in sorted(out.glob("*.tar")):
        with tarfile.open(tar) as tf:
            found += [(tar.name, json.loads(tf.extractfile(m).read())) for m in tf if m.name.endswith(".json")]
    return found


def test_json_fields_have_one_type_across_shards(mixed_l2i):
    metas = _sample_jsons(mixed_l2i)
    assert {t for t, _ in metas} == {"00000_0000.tar", "00000_0001.tar", "00001_0000.tar"}
    types: dict[str, set[str]] = {}
    for _, meta in metas:
        for k, v in meta.items():
            types.setdefault(k, set()).add(type(v).__name__)
    assert all(len(t) == 1 and "NoneType" not in t for t in types.values()), types
    assert types["WIDTH"] == {"float"} and types["AESTHETIC_SCORE"] == {"float"} and types["hash"] == {"int"}
    first = [m for t, m in metas if t.startswith("00000")][0]
    assert math.isnan(first["WIDTH"]) and "hash" not in first  # unknown: NaN for floats, absent for hash


def test_hf_datasets_loads_the_shards_non_streaming(mixed_l2i, tmp_path, capsys, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    rc, urls, _ = _ls(capsys, mixed_l2i)
    assert rc == 0 and len(urls) == 3
    ds = datasets.load_dataset("webdataset", data_files={"train": urls}, split="train",
                               cache_dir=str(tmp_path / "hf_cache"))
    assert len(ds) == 2 + 4
    assert {"jpg", "fg.png", "mask.png", "inpaint_mask.png", "bg.png", "txt", "json"} <= set(ds.features)
    row = ds[len(ds) - 1]
    assert row["json"]["key"] == row["__key__"] and row["json"]["WIDTH"] == 200.0
    assert row["fg.png"].size == (64, 64)
