"""The L2I data stream: index from parquet, the test split, deterministic resumable streams, bad input."""
from __future__ import annotations

import json
from itertools import islice

import numpy as np
import pytest
from trainshards import rewrite_tar, tiny_config

from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.storage import open_store
from training.data.index import build_index
from training.data.split import is_test
from training.data.stream import L2IData


def _data(path, *overrides):
    cfg = tiny_config(*overrides)
    store = open_store(str(path))
    return L2IData(store, build_index(str(path), store, cfg.data), cfg.data, cfg.train.batch_size, cfg.train.seed)


def test_split_is_a_stable_hash():
    keys = [f"{i:09d}" for i in range(4000)]
    test = [k for k in keys if is_test(k, 0.1, 0)]
    assert 0.08 < len(test) / len(keys) < 0.12
    assert test == [k for k in keys if is_test(k, 0.1, 0)]  # same answer every time
    assert test != [k for k in keys if is_test(k, 0.1, 1)]  # the seed moves it
    assert set(test) <= {k for k in keys if is_test(k, 0.2, 0)}  # a larger fraction only adds keys


def test_index_counts_ok_samples_from_parquet(l2i_dir):
    data = _data(l2i_dir, "data.test_fraction=0.3")
    idx = data.index
    assert [s.name for s in idx.shards] == ["00000_0000", "00001_0000"]
    assert idx.n_train + idx.n_test == 11 and idx.n_test >= 1  # the failed download is not a sample
    assert idx.size == (64, 64)
    for s in idx.shards:
        assert all(is_test(k, 0.3, 0) for k in s.test_keys) and not any(is_test(k, 0.3, 0) for k in s.train_keys)


def test_batches_decode_layers_and_never_show_test_keys(l2i_dir):
    data = _data(l2i_dir, "data.test_fraction=0.3")
    test_keys = {k for s in data.index.shards for k in s.test_keys}
    seen = set()
    for batch in islice(data.batches(0, 1, {}), 8):  # several stream epochs
        assert batch["fg"].shape == (4, 3, 64, 64) and batch["mask"].shape == (4, 1, 64, 64)
        assert -1 <= batch["image"].min() and batch["image"].max() <= 1 and 0 <= batch["mask"].min()
        assert all(c.startswith("a red ball") for c in batch["caption"])
        seen |= set(batch["key"])
    assert seen and not seen & test_keys
    assert seen == {k for s in data.index.shards for k in s.train_keys}


def test_flip_is_shared_by_all_layers(l2i_dir):
    data = _data(l2i_dir)
    plain = _data(l2i_dir, "data.flip=false")
    a, b = next(data.batches(0, 1, {})), next(plain.batches(0, 1, {}))
    assert a["key"] == b["key"]
    flipped = [i for i in range(4) if not np.array_equal(a["mask"][i], b["mask"][i])]
    assert flipped  # some samples flip, and then every layer flips together
    for i in flipped:
        for layer in ("fg", "bg", "mask", "image"):
            assert np.array_equal(a[layer][i].numpy(), b[layer][i].numpy()[..., ::-1])


def test_resumed_stream_continues_exactly(l2i_dir):
    data = _data(l2i_dir)
    full = [b for b in islice(data.batches(0, 1, {}), 6)]
    mark = full[2]["_stream"]
    resumed = list(islice(data.batches(0, 1, {str(mark["id"]): mark}), 3))
    for a, b in zip(full[3:], resumed):
        assert a["key"] == b["key"] and np.array_equal(a["fg"].numpy(), b["fg"].numpy())


def test_ranks_read_disjoint_streams(l2i_dir):
    data = _data(l2i_dir, "data.test_fraction=0")
    r0 = next(data.batches(0, 2, {}))
    r1 = next(data.batches(1, 2, {}))
    assert not set(r0["key"]) & set(r1["key"])


def test_corrupt_member_is_skipped_and_counted(l2i_copy):
    victim = {}

    def corrupt(name, data):
        if name.endswith(".fg.png") and not victim:
            victim["key"] = name.split(".")[0]
            return b"not a png"
        return data

    rewrite_tar(l2i_copy / "00000_0000.tar", corrupt)
    data = _data(l2i_copy, "data.test_fraction=0")
    batches = list(islice(data.batches(0, 1, {}), 5))
    assert sum(b["_stream"]["bad"] for b in batches) >= 1
    assert victim["key"] not in {k for b in batches for k in b["key"]}


def test_truncated_tar_is_skipped_not_a_crash(l2i_copy):
    tar = l2i_copy / "00001_0000.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 3])
    batches = list(islice(_data(l2i_copy, "data.test_fraction=0").batches(0, 1, {}), 4))
    assert sum(b["_stream"]["bad"] for b in batches) >= 1


def test_bad_data_dirs_are_clear_errors(tmp_path, l2i_copy):
    with pytest.raises(NotFound, match="data directory not found"):
        _data(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no complete L2I shards"):
        _data(tmp_path / "empty")
    (l2i_copy / "00001_0000_stats.json").unlink()  # an incomplete shard is not listed
    assert [s.name for s in _data(l2i_copy).index.shards] == ["00000_0000"]


def test_no_ok_samples_is_a_clear_error(l2i_copy):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name in ("00000_0000", "00001_0000"):
        t = pq.read_table(l2i_copy / f"{name}.parquet")
        t = t.set_column(t.schema.get_field_index("status"), "status", pa.array(["rejected"] * len(t)))
        pq.write_table(t, l2i_copy / f"{name}.parquet")
    with pytest.raises(InputError, match="no `ok` samples"):
        _data(l2i_copy)


def test_mixed_resolutions_are_refused(l2i_copy):
    import cv2

    def upscale(name, data):
        if name.endswith((".png", ".jpg")):
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            return cv2.imencode(name[name.rfind("."):], cv2.resize(img, (96, 96)))[1].tobytes()
        return data

    rewrite_tar(l2i_copy / "00001_0000.tar", upscale)
    with pytest.raises(InputError, match="mixed resolution.*00000_0000 is 64x64.*00001_0000 is 96x96"):
        _data(l2i_copy)
    assert json.loads((l2i_copy / "00000_0000_stats.json").read_text())  # the data itself is untouched


def test_resume_with_two_loader_workers_keeps_the_round_robin(l2i_dir):
    """After an odd number of batches the next one is due from the second worker's stream."""
    data = _data(l2i_dir, "data.num_workers=2")
    full = list(islice(data.batches(0, 1, {}), 6))
    assert {b["_stream"]["id"] for b in full} == {0, 1}
    positions = {str(b["_stream"]["id"]): b["_stream"] for b in full[:3]}
    resumed = list(islice(data.batches(0, 1, positions, consumed=3), 3))
    assert [b["key"] for b in resumed] == [b["key"] for b in full[3:]]
