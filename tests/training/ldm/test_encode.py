"""`l2i encode`: latents equal the AE's posterior on the same samples; a rerun writes nothing new."""
import json

import pytest
import torch

from l2i_pipeline.core.storage import open_store
from training.latents.encode import EncodeJob, encode
from training.latents.shards import load_shard, read_index


def _job(l2i_dir, ae_dir, out, **kw):
    return EncodeJob(open_store(str(l2i_dir), {}), open_store(str(out), {}), str(ae_dir), resolution=64,
                     test_fraction=0.3, batch_size=4, **kw)


def test_latents_equal_the_posterior_and_rerun_writes_nothing(l2i_dir, ae_dir, tmp_path):
    from training.base.config import DataConfig
    from training.data.index import build_index
    from training.data.stream import collate, iter_shard
    from training.latents.codec import load_ae, posterior

    out = tmp_path / "lat"
    summary = encode(_job(l2i_dir, ae_dir, out))
    assert summary["shards"] == 2 and summary["train"] + summary["test"] == 12 and summary["test"] > 0
    assert summary["latent_shape"] == [4, 8, 8] and summary["latent_scale"] == pytest.approx(1 / summary["latent_std"])
    store = open_store(str(l2i_dir), {})
    index = build_index(str(l2i_dir), store, DataConfig(resolution=64, test_fraction=0.3))
    ae = load_ae(ae_dir)
    shard = index.shards[0]
    keys = sorted(shard.train_keys + shard.test_keys)
    items = list(iter_shard(store, shard.name, keys, 64, None))
    mean, std = posterior(ae, {k: v for k, v in collate(items).items() if k != "key" and k != "caption"})
    got = load_shard(open_store(str(out), {}), shard.name)
    torch.testing.assert_close(got["mean"], mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["std"], std, atol=1e-5, rtol=1e-5)
    _, lat_shards = read_index(open_store(str(out), {}))
    assert lat_shards[0].keys == keys
    assert {lat_shards[0].keys[r] for r in lat_shards[0].test_rows} == set(shard.test_keys)

    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    again = encode(_job(l2i_dir, ae_dir, out))
    assert again["encoded_now"] == 0 and again["skipped_shards"] == 2
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()} == before
    # one shard lost: only it is redone
    (out / f"{shard.name}_stats.json").unlink()
    assert encode(_job(l2i_dir, ae_dir, out))["encoded_now"] == 6
    assert json.loads((out / "latents.json").read_text())["latent_std"] == pytest.approx(summary["latent_std"])


def test_latent_markers_vouch_for_sizes_and_digests(l2i_dir, ae_dir, tmp_path):
    # as every shard kind's marker: a torn latent shard is redone, a same-size foreign write is never read
    from l2i_pipeline.core.shards import ShardError

    out = tmp_path / "lat"
    encode(_job(l2i_dir, ae_dir, out))
    store = open_store(str(out), {})
    name = read_index(store)[1][0].name
    marker = json.loads((out / f"{name}_stats.json").read_text())
    assert set(marker["files"]) == {f"{name}.safetensors", f"{name}.parquet"}
    tensors = out / f"{name}.safetensors"
    good = tensors.read_bytes()
    tensors.write_bytes(good[:-8])  # torn: shorter than its marker says
    again = encode(_job(l2i_dir, ae_dir, out))
    assert again["encoded_now"] == 6 and tensors.read_bytes() == good
    tensors.write_bytes(good[:-8] + b"\x00" * 8)  # same size, other bytes
    with pytest.raises(ShardError, match="does not match its marker"):
        load_shard(store, name)


def test_other_autoencoder_refused(l2i_dir, ae_dir, tmp_path):
    from l2i_pipeline.core.errors import ConfigError
    from training.models.ae import CaT2IAE

    out = tmp_path / "lat"
    encode(_job(l2i_dir, ae_dir, out))
    other = tmp_path / "ae2"
    CaT2IAE(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8, head_width=8,
            mid_block_attention=False).save_pretrained(other)
    with pytest.raises(ConfigError, match="ae, ae_fingerprint"):
        encode(_job(l2i_dir, other, out))


def test_a_second_encode_into_the_same_out_is_refused(l2i_dir, ae_dir, tmp_path):
    from l2i_pipeline.core.lock import LOCK, LockedError, output_lock

    out = tmp_path / "lat"
    with output_lock(open_store(str(out), {}), "encode"):
        with pytest.raises(LockedError, match="is writing to"):
            encode(_job(l2i_dir, ae_dir, out))
        assert not (out / "encode.json").exists()  # refused before any write
    encode(_job(l2i_dir, ae_dir, out))
    assert (out / "latents.json").is_file() and not (out / LOCK).exists()


def test_encode_cli_reports_the_std(l2i_dir, ae_dir, tmp_path, capsys):
    from l2i_pipeline.cli import main

    args = ["encode", "--data", str(l2i_dir), "--ae", str(ae_dir), "--out", str(tmp_path / "lat"), "--preset", "tiny",
            "--runner", "local"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "latent std" in out and "scale 1/std" in out
    assert main(args[:3] + ["--ae", str(tmp_path / "missing"), "--out", str(tmp_path / "lat2")] + args[7:]) == 2
    assert "autoencoder dir not found" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_actor_pool_writes_the_same_latents(l2i_dir, ae_dir, tmp_path):
    import ray

    encode(_job(l2i_dir, ae_dir, tmp_path / "local"))
    try:
        summary = encode(_job(l2i_dir, ae_dir, tmp_path / "ray"), runner="ray", workers=1, num_cpus=2)
    finally:
        ray.shutdown()
    assert summary["encoded_now"] == 12
    for p in sorted((tmp_path / "local").glob("*.safetensors")):
        a, b = load_shard(open_store(str(tmp_path / "local"), {}), p.stem), \
            load_shard(open_store(str(tmp_path / "ray"), {}), p.stem)
        assert torch.equal(a["mean"], b["mean"]) and torch.equal(a["std"], b["std"])


def test_a_shard_left_unwritten_is_named_and_exits_1(l2i_dir, ae_dir, tmp_path, monkeypatch):
    from training.latents import encode as enc

    real = enc.EncodeWorker.__call__
    first = []

    def skip_first(self, batch):
        if not first:  # the first shard is "lost": nothing written, nothing returned
            first.append(str(batch["shard"][0]))
            return {"shard": [], "count": []}
        return real(self, batch)

    monkeypatch.setattr(enc.EncodeWorker, "__call__", skip_first)
    summary = encode(_job(l2i_dir, ae_dir, tmp_path / "lat"))
    assert summary["missing"] == first and summary["encoded_now"] > 0
    monkeypatch.setattr(enc.EncodeWorker, "__call__", real)
    summary = encode(_job(l2i_dir, ae_dir, tmp_path / "lat"))
    assert summary["missing"] == [] and summary["skipped_shards"] == 1
