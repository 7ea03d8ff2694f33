"""Tiny extractors built in code and tiny inputs in the contracted layouts (no weights, no network).

- a torchscript module shaped like clean-fid's Inception file (a `layers` submodule on 299x299 in [-1, 1]);
- a tiny `CLIPModel` + processor saved with `save_pretrained`;
- L2I shards (NAME.tar/.parquet/_stats.json), raw shards (tests/rawshards.py) and an `l2i sample` dir.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from rawshards import make_rows, scene, write_raw_shard


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


class TinyInception(torch.nn.Module):
    def __init__(self, dim: int = 12):
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.Sequential(torch.nn.Conv2d(3, dim, 9, stride=8), torch.nn.Tanh(),
                                          torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - 128) / 128)


@pytest.fixture(scope="session")
def tiny_inception(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inception") / "inception-2015-12-05.pt"
    torch.jit.script(TinyInception().eval()).save(str(path))
    return path


VOCAB = ["l", "o", "w", "e", "r", "s", "t", "i", "d", "n", "a", "b", "c", "lo", "l</w>", "w</w>", "r</w>",
         "t</w>", "a</w>", "low</w>", "er</w>", "<unk>", "<|startoftext|>", "<|endoftext|>"]


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    d = tmp_path_factory.mktemp("clip")
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    (d / "merges.txt").write_text("#version: 0.2\nl o\nlo w</w>\ne r</w>\n")
    tok = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                             crop_size={"height": 32, "width": 32}), tokenizer=tok)
    text = {"vocab_size": len(VOCAB), "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": 22, "eos_token_id": 23,
            "pad_token_id": 23}
    vision = {"hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).eval()
    model.save_pretrained(d)
    proc.save_pretrained(d)
    return d


def write_l2i_shard(root: Path, name: str, keys: list[str], rejected: tuple[str, ...] = (), size: int = 64) -> None:
    """An L2I shard as `l2i filter` writes it: tar members of ok samples, parquet of every row, stats last."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    with tarfile.open(root / f"{name}.tar", "w") as tf:
        for key in keys:
            ok = key not in rejected
            rows.append({"key": key, "status": "ok" if ok else "rejected", "reason": None if ok else "mask:area",
                         "caption": f"a red ball {key}", "url": f"http://example.test/{key}.jpg"})
            if not ok:
                continue
            img = scene(int(key) % 97, size)
            mask = np.zeros(img.shape[:2], np.uint8)
            mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
            members = {"jpg": png(img), "fg.png": png(img), "mask.png": png(mask), "inpaint_mask.png": png(mask),
                       "bg.png": png(img), "txt": rows[-1]["caption"].encode(),
                       "json": json.dumps({"key": key}).encode()}
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    pq.write_table(pa.Table.from_pylist(rows), root / f"{name}.parquet")
    (root / f"{name}_stats.json").write_text(json.dumps({"status": {"ok": len(keys) - len(rejected)}}))


@pytest.fixture
def l2i_dir(tmp_path) -> Path:
    """Two shards, 40 keys that overlap the raw shards' first keys; one rejected."""
    d = tmp_path / "l2i"
    write_l2i_shard(d, "00000_0000", [f"00000{i:04d}" for i in range(20)], rejected=("000000003",))
    write_l2i_shard(d, "00001_0000", [f"00001{i:04d}" for i in range(20)])
    return d


@pytest.fixture
def la_dir(tmp_path) -> Path:
    d = tmp_path / "raw"
    write_raw_shard(d, "00000", make_rows(24))  # keys 000000000..000000023: 0..19 are in L2I
    return d


def write_sample_dir(root: Path, n: int, sizes: tuple[int, ...] = (64,), with_composites: bool = True) -> Path:
    """An `l2i sample` dir: <id>/{composite,mask,...}.png and samples.parquet."""
    rows = []
    for i in range(n):
        sid = f"p{i:03d}_s{i}"
        size = sizes[i % len(sizes)]
        d = root / sid
        d.mkdir(parents=True, exist_ok=True)
        img = scene(100 + i, size)[:, :size]
        mask = np.zeros((size, size), np.uint8)
        mask[size // 4: 3 * size // 4, size // 3: 2 * size // 3] = 230
        if with_composites:
            (d / "composite.png").write_bytes(png(img))
        for name, arr in (("mask.png", mask), ("fg.png", img), ("bg.png", img), ("image.png", img)):
            (d / name).write_bytes(png(arr))
        rows.append({"id": sid, "prompt": f"a red ball {i}", "seed": i, "paths": json.dumps({"composite": "x"})})
    pq.write_table(pa.Table.from_pylist(rows), root / "samples.parquet")
    return root


@pytest.fixture
def sample_dir(tmp_path) -> Path:
    return write_sample_dir(tmp_path / "samples", 6, sizes=(64, 48))


@pytest.fixture(scope="session")
def is_test():
    """The training split (training.data.split, issue 12): evaluation must reuse it."""
    from training.data.split import is_test

    return is_test


@pytest.fixture(scope="session")
def make_sample_dir():
    return write_sample_dir
