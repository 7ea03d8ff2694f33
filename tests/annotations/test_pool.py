"""The pool: seeded, reproducible, ok samples only, train/test split, byte offsets that read the right bytes."""
from __future__ import annotations

import pytest

from annotations import db
from annotations.pool import build_pool, sample_files, split_sizes
from l2i_pipeline.core.shards import iter_output_samples, list_output_shards


def pooled(tmp_path, samples_dir, name, **kw):
    conn = db.connect(tmp_path / name, create=True)
    result = build_pool(conn, samples_dir, **kw)
    rows = [tuple(r) for r in conn.execute("SELECT key, shard, split, pos, draw FROM samples ORDER BY pos")]
    return conn, result, rows


def test_pool_is_reproducible_and_draws_only_ok_samples(tmp_path, shard_maker):
    ok_keys = shard_maker(tmp_path / "l2iu", shards=3, per_shard=10)
    _, r1, rows1 = pooled(tmp_path, tmp_path / "l2iu", "a.sqlite", size=12, test=3, seed=7)
    _, _, rows2 = pooled(tmp_path, tmp_path / "l2iu", "b.sqlite", size=12, test=3, seed=7)
    _, _, rows3 = pooled(tmp_path, tmp_path / "l2iu", "c.sqlite", size=12, test=3, seed=8)
    assert rows1 == rows2
    assert [r[0] for r in rows1] != [r[0] for r in rows3]
    assert (r1.train, r1.test, r1.available, r1.dropped) == (9, 3, len(ok_keys), 0)
    assert {r[0] for r in rows1} <= set(ok_keys)
    assert len({r[0] for r in rows1}) == 12
    assert sorted(r[2] for r in rows1).count("test") == 3


def test_pool_caps_at_available_and_keeps_test_share(tmp_path, shard_maker):
    ok_keys = shard_maker(tmp_path / "l2iu", shards=1, per_shard=12)  # 10 ok
    _, r, rows = pooled(tmp_path, tmp_path / "l2iu", "a.sqlite", size=6000, test=1000, seed=0)
    assert len(rows) == len(ok_keys) == 10
    assert (r.train, r.test) == (8, 2)
    assert split_sizes(6000, 1000, 100000) == (6000, 1000)
    with pytest.raises(ValueError):
        split_sizes(10, 11, 100)


def test_offsets_read_exactly_the_member_bytes(tmp_path, shards_dir):
    conn, _, rows = pooled(tmp_path, shards_dir, "a.sqlite", size=12, test=2, seed=0)
    tar_members = {}
    for name in list_output_shards(shards_dir):
        tar_members.update(dict(iter_output_samples(shards_dir, name)))
    for key, *_ in rows:
        files = sample_files(conn, key)
        for member in ("jpg", "fg.png", "mask.png", "inpaint_mask.png", "bg.png", "txt", "json"):
            assert files.read(member) == tar_members[key][member]
    assert sample_files(conn, "../../etc/passwd") is None


def test_second_pool_in_same_db_is_refused(tmp_path, shards_dir):
    conn, _, _ = pooled(tmp_path, shards_dir, "a.sqlite", size=5, test=1, seed=0)
    with pytest.raises(ValueError, match="already has a pool"):
        build_pool(conn, shards_dir, size=5, test=1, seed=0)


def test_sample_missing_members_is_left_out(tmp_path, shard_maker):
    import io
    import tarfile

    shard_maker(tmp_path / "l2iu", shards=1, per_shard=6)
    tar_path = tmp_path / "l2iu" / "00000_0000.tar"
    with tarfile.open(tar_path) as tf:
        kept = [(m, tf.extractfile(m).read()) for m in tf.getmembers() if m.name != "000000000.bg.png"]
    with tarfile.open(tar_path, "w") as tf:
        for m, data in kept:
            tf.addfile(m, io.BytesIO(data))
    _, r, rows = pooled(tmp_path, tmp_path / "l2iu", "a.sqlite", size=100, test=0, seed=0)
    assert r.dropped == 1 and "000000000" not in {row[0] for row in rows} and len(rows) == 4


def test_pool_and_ranged_reads_from_a_bucket(raw_dir, s3_bucket, tmp_path):
    """`annotate pool --samples s3://...`: offsets from the tar headers, images by one ranged read each."""
    from annotations import db as store_db
    from annotations.pool import build_pool, sample_files
    from l2i_pipeline.core.shards import iter_output_samples
    from l2i_pipeline.engine.synthesize import synthesize
    from stages.config import load_config

    synthesize(raw_dir, f"{s3_bucket}/l2i", load_config(None, ["resolution=96"]), runner="local")
    conn = store_db.connect(tmp_path / "labels.sqlite", create=True)
    r = build_pool(conn, f"{s3_bucket}/l2i", size=4, test=1, seed=0)
    assert r.train + r.test == 4 and r.dropped == 0
    members = {k: m for n in ("00000_0000", "00001_0000") for k, m in iter_output_samples(f"{s3_bucket}/l2i", n)}
    key = conn.execute("SELECT key FROM samples LIMIT 1").fetchone()[0]
    files = sample_files(conn, key)
    assert files.read("jpg") == members[key]["jpg"] and files.read("mask.png") == members[key]["mask.png"]
