"""The format modules on their own: names, the 8-bit mask, the tar, the index row, the member decode."""
from __future__ import annotations

import io
import json
import tarfile

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from l2i_pipeline.formats import mask8, names
from l2i_pipeline.formats.decode import decode_image, depth_of, read_layers
from l2i_pipeline.formats.index import INDEX_SCHEMA, index_row, parquet_bytes
from l2i_pipeline.formats.tar import iter_tar_stream, member_offsets, member_order, sample_tar, write_tar


def test_layer_names():
    assert names.member(1, names.FG) == "fg.png" and names.member(3, names.ALPHA) == "l3.alpha.png"
    assert names.source_member(1) == "jpg" and names.source_member(2) == "bg.png"
    assert names.source_member(3) == "l2.bg.png"


def test_mask8_round_trips_every_level_and_matches_the_old_formulas():
    levels = np.arange(256, dtype=np.uint8)
    assert np.array_equal(mask8.encode(mask8.decode(levels)), levels)
    m = np.random.default_rng(0).uniform(-0.1, 1.1, (64, 64)).astype(np.float32)
    old_quantize = (np.round(np.clip(m, 0, 1) * 255) / 255).astype(np.float32)
    assert np.array_equal(mask8.quantize(m), old_quantize)
    inside = np.clip(m, 0, 1)
    assert np.array_equal(mask8.encode(inside), np.round(inside * 255).astype(np.uint8))
    assert mask8.binary(np.array([True, False])).tolist() == [255, 0]


def test_tar_is_deterministic_and_reads_back():
    samples = [("b", {"jpg": b"J", "fg.png": b"F", "mask.png": b"M", "inpaint_mask.png": b"I", "bg.png": b"B",
                      "txt": b"T", "json": b"{}", "l2.fg.png": b"2", "alpha.png": b"A"})]
    data = sample_tar(samples)
    assert data == sample_tar(samples) and len(data) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        infos = tf.getmembers()
    assert [i.name for i in infos] == [f"b.{n}" for n in member_order(samples[0][1])]
    assert [i.name.split(".", 1)[1] for i in infos][:7] == list(names.MEMBERS)
    assert {(i.mtime, i.mode, i.uid, i.uname) for i in infos} == {(0, 0o644, 0, "")}
    errors: list[str] = []
    assert list(iter_tar_stream(io.BytesIO(data), "t", errors)) == [("b", samples[0][1])] and not errors
    offsets = member_offsets(io.BytesIO(data), {"b"})["b"]
    assert data[offsets["txt"][0]:][:offsets["txt"][1]] == b"T"


def test_a_cut_tar_keeps_the_samples_before_the_damage():
    data = write_tar([("a.txt", b"1"), ("b.txt", b"2" * 600)])
    errors, cut = [], []
    got = list(iter_tar_stream(io.BytesIO(data[:1536]), "t", errors, cut=cut))
    assert got == [("a", {"txt": b"1"})] and cut == ["b"] and errors


def test_index_row_skips_nan_and_fills_the_schema():
    row = index_row("k", "ok", None, "cap", {"AESTHETIC_SCORE": 6.5, "aesthetic": float("nan"), "components": 2})
    assert row["aesthetic"] == 6.5 and row["components"] == 2 and json.loads(row["meta"])["components"] == 2
    table = pq.read_table(io.BytesIO(parquet_bytes([row])))
    assert table.schema.equals(INDEX_SCHEMA)


def _png(a: np.ndarray) -> bytes:
    return cv2.imencode(".png", a)[1].tobytes()


def test_read_layers_decodes_every_layer_and_names_what_is_missing():
    rgb, m = np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 128, np.uint8)
    layer = {names.FG: _png(rgb), names.MASK: _png(m), names.INPAINT_MASK: _png(m), names.BG: _png(rgb)}
    members = {**layer, **{names.member(2, n): d for n, d in layer.items()}, names.JSON: b'{"depth": 2}'}
    layers = read_layers(members)
    assert depth_of(members) == 2 and len(layers) == 2
    assert layers[1].mask.dtype == np.float32 and layers[1].mask[0, 0] == np.float32(128 / 255)
    with pytest.raises(KeyError, match="l2.bg.png"):
        read_layers({k: v for k, v in members.items() if k != "l2.bg.png"})
    with pytest.raises(ValueError, match="fg.png does not decode"):
        decode_image(b"nope", name="fg.png")
