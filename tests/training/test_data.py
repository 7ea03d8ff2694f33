"""The L2I data stream: index from parquet, the test split, deterministic resumable streams, bad input."""
from __future__ import annotations

import json
from itertools import islice

import numpy as np
import pytest
import torch
from trainshards import rewrite_tar, tiny_config

from l2i_pipeline.core.commit import file_record
from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.shards import ShardError
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


def _reseal(shard_dir, name, suffix=".tar"):
    """Make the marker vouch for the shard's current file (as if the writer had written it so)."""
    marker = json.loads((shard_dir / f"{name}_stats.json").read_text())
    marker["files"][f"{name}{suffix}"] = file_record((shard_dir / f"{name}{suffix}").read_bytes())
    (shard_dir / f"{name}_stats.json").write_text(json.dumps(marker))


def test_undecodable_member_of_a_verified_shard_is_skipped_and_counted_once(l2i_copy):
    victim = {}

    def corrupt(name, data):
        if name.endswith(".fg.png") and not victim:
            victim["key"] = name.split(".")[0]
            return b"not a png"
        return data

    rewrite_tar(l2i_copy / "00000_0000.tar", corrupt)
    _reseal(l2i_copy, "00000_0000")
    data = _data(l2i_copy, "data.test_fraction=0")
    batches = list(islice(data.batches(0, 1, {}), 10))  # several epochs: the bad sample is drawn in each
    assert {k for b in batches for k in b["_stream"]["bad"]} == {victim["key"]}
    assert sum(len(b["_stream"]["bad"]) for b in batches) >= 2  # drawn more than once, one sample
    assert victim["key"] not in {k for b in batches for k in b["key"]}


@pytest.mark.parametrize("damage", ["torn", "garbage"])
def test_torn_or_foreign_tar_with_its_marker_is_an_error(l2i_copy, damage):
    tar = l2i_copy / "00001_0000.tar"
    if damage == "torn":  # cut short, marker left in place
        tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 3])
    else:  # another tar of the same size under the marker's name (the listing cannot tell it apart)
        size = tar.stat().st_size
        rewrite_tar(tar, lambda name, data: bytes(len(data)))
        tar.write_bytes(tar.read_bytes().ljust(size, b"\0")[:size])
    with pytest.raises(ShardError, match="00001_0000.tar does not match its marker"):
        list(islice(_data(l2i_copy, "data.test_fraction=0").batches(0, 1, {}), 4))


def test_garbage_tar_is_a_one_line_error_from_train(l2i_copy, tmp_path, capsys):
    from l2i_pipeline.cli import main

    tar = l2i_copy / "00001_0000.tar"
    size = tar.stat().st_size
    tar.write_bytes(np.random.default_rng(0).bytes(size))
    rc = main(["train", "ae", "--runner", "local", "--preset", "tiny", "--data", str(l2i_copy), "--out",
               str(tmp_path / "run"), "--set", "train.steps=4", "--set", "log.progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "does not match its marker" in err[0], err


def test_size_disagreeing_with_the_marker_is_refused_from_the_listing(l2i_copy):
    tar = l2i_copy / "00001_0000.tar"
    tar.write_bytes(tar.read_bytes()[:-1024])
    with pytest.raises(ShardError, match="00001_0000.tar does not match its marker"):
        _data(l2i_copy)


def test_raw_download_dir_says_to_run_synthesize(raw_dir):
    with pytest.raises(InputError, match="raw shards .*`l2i synthesize"):
        _data(raw_dir)


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
        _reseal(l2i_copy, name, ".parquet")
    with pytest.raises(InputError, match="no `ok` samples"):
        _data(l2i_copy)


def test_every_sample_is_cropped_and_resized_by_one_rule(l2i_copy):
    """A shard of another size trains (everything is resized anyway); a non-square sample is centre-cropped,
    never squashed."""
    import cv2

    def reshape(name, data):
        if name.endswith((".png", ".jpg")):
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            return cv2.imencode(name[name.rfind("."):], cv2.resize(img, (96, 96)))[1].tobytes()
        return data

    rewrite_tar(l2i_copy / "00001_0000.tar", reshape)  # the whole shard at 96x96
    _reseal(l2i_copy, "00001_0000")
    data = _data(l2i_copy, "data.test_fraction=0", "data.flip=false")
    batches = list(islice(data.batches(0, 1, {}), 3))
    assert all(b["fg"].shape[-2:] == (64, 64) for b in batches)
    assert not any(b["_stream"]["bad"] for b in batches)


def test_square_crops_a_non_square_image_instead_of_squashing_it():
    from training.data.stream import square

    img = np.zeros((64, 128), np.uint8)
    img[:, 32:96] = 255  # a white square in the middle of a wide image, black bars either side
    out = square(img, 32)
    assert out.shape == (32, 32) and out.min() == 255  # the centre square, not a squashed 2:1 image
    assert square(np.full((40, 40), 7, np.uint8), 40).shape == (40, 40)


def test_batches_are_shuffled_within_shards_and_differ_between_epochs(l2i_dir):
    data = _data(l2i_dir, "data.test_fraction=0")
    n = data.index.n_train
    keys = [k for b in islice(data.batches(0, 1, {}), 3 * n // 4 + 3) for k in b["key"]]
    epoch0, epoch1 = keys[:n], keys[n:2 * n]
    assert sorted(epoch0) == sorted(epoch1) == sorted(k for s in data.index.shards for k in s.train_keys)
    per_shard = [[k for k in epoch0 if k in set(s.train_keys)] for s in data.index.shards]
    assert any(ks != sorted(ks) for ks in per_shard)  # not consecutive sorted keys
    assert epoch0 != epoch1  # a new order each epoch
    full = list(islice(data.batches(0, 1, {}), 4))
    mark = full[1]["_stream"]
    assert mark["epoch"] == 0 and 0 < mark["offset"] < n  # mid-epoch, inside a shuffled shard
    resumed = list(islice(data.batches(0, 1, {str(mark["id"]): mark}), 2))
    for a, b in zip(full[2:], resumed):
        assert a["key"] == b["key"] and all(torch.equal(a[x], b[x]) for x in ("fg", "bg", "mask", "image"))


def test_resume_with_two_loader_workers_keeps_the_round_robin(l2i_dir):
    """After an odd number of batches the next one is due from the second worker's stream."""
    data = _data(l2i_dir, "data.num_workers=2")
    full = list(islice(data.batches(0, 1, {}), 6))
    assert {b["_stream"]["id"] for b in full} == {0, 1}
    positions = {str(b["_stream"]["id"]): b["_stream"] for b in full[:3]}
    resumed = list(islice(data.batches(0, 1, positions, consumed=3), 3))
    assert [b["key"] for b in resumed] == [b["key"] for b in full[3:]]
