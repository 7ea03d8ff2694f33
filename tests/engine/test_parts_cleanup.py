"""No empty `_parts/NAME/` directories stay behind once a shard is committed from its parts."""
from __future__ import annotations

from l2i_pipeline.core.sample import Sample
from l2i_pipeline.core.storage import open_store
from l2i_pipeline.engine.writer import PARTS, finalize_unit, write_parts


def test_finalize_removes_the_units_part_directory(tmp_path):
    out = open_store(str(tmp_path / "out"))
    samples = [Sample(f"k{i}", "u1" if i < 2 else "u2", meta={}).reject("decode:broken") for i in range(4)]
    records = write_parts(out, samples[:1]) + write_parts(out, samples[1:])
    parts = [r["part"] for r in records if r["unit"] == "u1"]
    assert len(parts) == 2 and (tmp_path / "out" / PARTS / "u1").is_dir()
    stats = finalize_unit(out, "u1", "in", parts, {})
    assert stats["count"] == 2 and out.exists("u1_stats.json")
    assert not (tmp_path / "out" / PARTS / "u1").exists()
    assert (tmp_path / "out" / PARTS / "u2").is_dir()  # another unit's parts are left alone


def test_a_ray_run_leaves_no_parts_directory(raw_dir, tmp_path):
    import ray

    from l2i_pipeline.engine.synthesize import synthesize
    from stages.config import load_config

    try:
        summary = synthesize(raw_dir, tmp_path / "l2i", load_config(None, ["resolution=96", "output_shard_size=4"]),
                             runner="ray", num_cpus=2)
    finally:
        ray.shutdown()
    assert summary["shards_written"] >= 3 and not summary["failed"]
    assert not (tmp_path / "l2i" / PARTS).exists()
