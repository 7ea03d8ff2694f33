"""`l2i synthesize` end to end: shard members, identities, accounting, resume, damaged input."""
import io
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image
from rawshards import make_rows, write_raw_shard

from l2i_pipeline.core.shards import list_output_shards, read_output_index
from l2i_pipeline.core.typedconfig import with_defaults
from l2i_pipeline.engine.synthesize import synthesize
from l2i_pipeline.formats.names import MEMBERS
from stages.config import ConfigError, load_config

CFG = ["resolution=96", "output_shard_size=4", "layers.dilate_kernel=5"]


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_shards_have_members_identities_and_full_accounting(raw_dir, tmp_path):
    out = tmp_path / "l2i"
    summary = synthesize(raw_dir, out, load_config(None, CFG), runner="local")
    assert summary["samples"] == 12 and summary["reasons"] == {"download:HTTP Error 404: Not Found": 1}
    names = list_output_shards(out)
    assert names == ["00000_0000", "00000_0001", "00001_0000", "00001_0001"]
    index = read_output_index(out).to_pylist()
    assert sorted(r["key"] for r in index) == sorted(f"00000{i:04d}" for i in range(7)) + sorted(
        f"00001{i:04d}" for i in range(5))  # every input row exactly once
    # stock webdataset reads the shards with the members of docs/ARCHITECTURE.md
    urls = [str(out / f"{n}.tar") for n in names]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert len(samples) == 11
    for s in samples:
        assert set(MEMBERS) <= set(s), set(s)
        img, fg, m = _decode(s["jpg"]), _decode(s["fg.png"]), _decode(s["mask.png"]) / 255.0
        mt, bg = _decode(s["inpaint_mask.png"]), _decode(s["bg.png"])
        assert img.shape == (96, 96, 3) and m.shape == (96, 96) and set(np.unique(mt)) <= {0, 255}
        assert np.array_equal(fg, np.where((m > 0.1)[..., None], img, 0))  # F = I * [m > t]
        assert np.array_equal(bg[mt == 0], img[mt == 0])  # B = I outside m~
        assert (mt[m > 0.1] == 255).all()  # m~ covers the thresholded mask
        meta = json.loads(s["json"])
        assert meta["key"] == s["__key__"] and meta["saliency"]["backend"] == "u2netp"
        assert meta["inpaint"]["backend"] == "telea" and "AESTHETIC_SCORE" in meta and "url" in meta
        assert s["txt"].decode().startswith("a red ball")
    stats = json.loads((out / "00000_0000_stats.json").read_text())
    assert stats["count"] == 4 and stats["input_shard"] == "00000"
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["resolution"] == 96 and "torch" in run["versions"]


def test_rerun_skips_complete_and_redoes_partial_shards(raw_dir, tmp_path):
    out = tmp_path / "l2i"
    cfg = load_config(None, CFG)
    synthesize(raw_dir, out, cfg, runner="local")
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    # simulate a crash: one shard lost its marker (partial), one lost everything, plus a temp file
    (out / "00000_0001_stats.json").unlink()
    for p in out.glob("00001_0000*"):
        p.unlink()
    (out / ".00001_0001.tar.tmp123").write_bytes(b"junk")
    summary = synthesize(raw_dir, out, cfg, runner="local")
    assert summary["shards_written"] == 2 and summary["shards_skipped"] == 2
    assert not list(out.glob(".*.tmp*"))
    after = read_output_index(out).to_pylist()
    assert len(after) == 12 and len({r["key"] for r in after}) == 12
    assert {p.name for p in out.glob("*.parquet")} == set(before)


def test_changed_config_on_existing_output_is_refused(raw_dir, tmp_path):
    out = tmp_path / "l2i"
    synthesize(raw_dir, out, load_config(None, CFG), runner="local")
    with pytest.raises(ConfigError, match=r"made with settings \(layers.threshold differ\)"):
        synthesize(raw_dir, out, load_config(None, CFG + ["layers.threshold=0.3"]), runner="local")
    # speed-only settings may change on resume, the backends' own among them (stages/sd2_settings.py)
    synthesize(raw_dir, out, load_config(None, CFG + ["saliency.batch_size=2"]), runner="local")
    synthesize(raw_dir, out, load_config(None, CFG + ["inpaint.compile=true", "inpaint.vae_batch_size=2"]),
               runner="local")
    with pytest.raises(ConfigError, match=r"made with settings \(inpaint.steps differ\)"):
        synthesize(raw_dir, out, load_config(None, CFG + ["inpaint.steps=20"]), runner="local")


def test_truncated_input_tar_is_read_up_to_the_damage(raw_dir, tmp_path):
    tar = raw_dir / "00001.tar"
    data = tar.read_bytes()
    tar.write_bytes(data[: len(data) // 2])
    out = tmp_path / "l2i"
    summary = synthesize(raw_dir, out, load_config(None, CFG), runner="local")
    assert summary["samples"] == 12  # still every row
    truncated = summary["reasons"].get("input:truncated_tar", 0)
    assert 1 <= truncated < 5 and summary["status"]["ok"] == 11 - truncated


def test_bad_images_in_a_shard_are_rejected_not_fatal(tmp_path):
    from rawshards import make_rows, write_raw_shard

    from l2i_pipeline.demo.inputs import bad_inputs

    rows = make_rows(len(bad_inputs()))
    for row, f in zip(rows, bad_inputs()):
        row["image"] = f.data
    write_raw_shard(tmp_path / "raw", "00000", rows)
    cfg = load_config(None, with_defaults(CFG, ["output_shard_size=100"]))
    summary = synthesize(tmp_path / "raw", tmp_path / "l2i", cfg, runner="local")
    assert summary["samples"] == len(rows)
    t = pq.read_table(tmp_path / "l2i" / "00000_0000.parquet").to_pylist()
    by_key = {r["key"]: r for r in t}
    for row, f in zip(rows, bad_inputs()):
        r = by_key[row["key"]]
        if f.filename.startswith("no_object_"):  # decodes fine, but holds no object
            assert r["status"] == "rejected" and r["reason"] == "saliency:no_salient_object", (f.filename, r)
        elif f.expected == "rejected":
            assert r["status"] == "rejected" and r["reason"].startswith("decode:"), (f.filename, r["reason"])
        else:  # decoded fine; may still be rejected later by the mask-area checks, never by decode
            assert r["status"] == "ok" or r["reason"].startswith("layers:"), (f.filename, r["reason"])


def test_unknown_backend_and_missing_input_fail_fast(tmp_path, raw_dir):
    with pytest.raises(ConfigError, match="unknown saliency.backend"):
        synthesize(raw_dir, tmp_path / "o", load_config(None, ["saliency.backend=nope"]))
    with pytest.raises(FileNotFoundError):
        synthesize(tmp_path / "missing", tmp_path / "o2", load_config(None, CFG), runner="local")
    shutil.rmtree(tmp_path / "o2", ignore_errors=True)


def test_reruns_that_would_mix_provenances_are_refused_or_redone_with_overwrite(raw_dir, tmp_path):
    """Another --input, a changed input shard, or an output inside the input: refused, naming what differs;
    --overwrite redoes the affected shards; a new input shard (a download that went on) is simply added."""
    from l2i_pipeline.core.shards import complete_shards

    out, cfg = tmp_path / "l2i", load_config(None, CFG)
    synthesize(raw_dir, out, cfg, runner="local")
    other = tmp_path / "raw2"
    shutil.copytree(raw_dir, other)
    with pytest.raises(ConfigError, match=f"another input \\({raw_dir}, this run names {other}\\)"):
        synthesize(other, out, cfg, runner="local")
    assert synthesize(other, out, cfg, runner="local", overwrite=True)["shards_written"] == len(complete_shards(out))
    with pytest.raises(ConfigError, match="is \\(inside\\) --input"):
        synthesize(other, other / "l2i", cfg, runner="local")
    write_raw_shard(other, "00001", make_rows(6, shard=1))  # rewritten in place: one more row
    with pytest.raises(ConfigError, match="input shard\\(s\\) 00001 of .* changed"):
        synthesize(other, out, cfg, runner="local")
    summary = synthesize(other, out, cfg, runner="local", overwrite=True)
    assert summary["shards_skipped"] == 2 and summary["shards_written"] == 2  # only 00001's shards redone
    write_raw_shard(other, "00002", make_rows(3, shard=2))  # a new input shard: added, nothing redone
    summary = synthesize(other, out, cfg, runner="local")
    assert summary["shards_written"] == 1 and summary["shards_skipped"] == 4
