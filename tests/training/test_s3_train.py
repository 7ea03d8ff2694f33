"""`l2i train ae --data s3://...` with forked loader workers (moto's S3 server on 127.0.0.1), and the Store
re-opening its filesystem in a forked process (what makes that work)."""
from __future__ import annotations

import multiprocessing
import os

import torch
from safetensors.torch import load_file

from l2i_pipeline.cli import main
from l2i_pipeline.core.storage import open_store


def _same_fs_after_fork(store, queue) -> None:
    inherited = store._fs
    fresh = store.fs
    queue.put((fresh is inherited, store._fs_pid == os.getpid()))


def test_a_forked_process_opens_its_own_filesystem(tmp_path):
    store = open_store(str(tmp_path))
    store.exists()  # the parent's filesystem object exists now
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_same_fs_after_fork, args=(store, queue))
    proc.start()
    reused, own = queue.get(timeout=60)
    proc.join(60)
    assert not reused and own
    assert store.fs is store._fs  # the parent keeps its own


def test_train_from_a_bucket_with_two_loader_workers_equals_the_local_run(l2i_dir, s3_bucket, tmp_path, capsys):
    bucket = open_store(f"{s3_bucket}/l2i")
    for f in l2i_dir.iterdir():
        if f.is_file():
            bucket.put(f.name, f.read_bytes())
    args = ["train", "ae", "--runner", "local", "--preset", "tiny", "--set", "train.steps=3",
            "--set", "data.num_workers=2", "--set", "log.progress=false", "--set", "ckpt.every=3"]
    assert main(args + ["--data", bucket.url, "--out", str(tmp_path / "s3run")]) == 0, capsys.readouterr().err
    assert main(args + ["--data", str(l2i_dir), "--out", str(tmp_path / "local")]) == 0
    a = load_file(str(tmp_path / "s3run" / "ae" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(tmp_path / "local" / "ae" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
