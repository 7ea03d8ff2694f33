"""Fixtures for the training tests: tiny L2I shards made once per session by `l2i synthesize --runner local`
on the test raw shards (tests/rawshards.py) at 64 px, and helpers to damage copies of them."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rawshards import make_rows, write_raw_shard


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine it is many times faster than two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def l2i_dir(tmp_path_factory) -> Path:
    """Two complete L2I shards (6 + 5 ok samples, one rejected row) at 64x64."""
    from l2i_pipeline.cli import main

    root = tmp_path_factory.mktemp("l2i")
    raw = root / "raw"
    write_raw_shard(raw, "00000", make_rows(7, extra={3: {"status": "failed_to_download",
                                                          "error_message": "HTTP Error 404: Not Found",
                                                          "image": None}}))
    write_raw_shard(raw, "00001", make_rows(5, shard=1))
    out = root / "l2i"
    rc = main(["synthesize", "--runner", "local", "--input", str(raw), "--output", str(out),
               "--set", "resolution=64", "--set", "layers.dilate_kernel=3"])
    assert rc == 0
    return out


@pytest.fixture
def l2i_copy(l2i_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session shards, safe to damage."""
    dst = tmp_path / "l2i"
    shutil.copytree(l2i_dir, dst)
    return dst
