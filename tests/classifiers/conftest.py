"""Fixtures for the classifier tests: a seeded random EfficientNet-b0 written where ImageNet weights would
be, and tiny synthetic L2I(U) shards whose quality is visible (true vs corrupted masks of composited
scenes; clean vs smeared backgrounds), with a label export like the annotation app's."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from l2i_pipeline.core.commit import write_output_shard
from l2i_pipeline.core.sample import Sample

SIZE = 64


def _field(rng, size):
    low = rng.uniform(0, 255, (4, 4, 3)).astype(np.float32)
    smooth = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth + rng.normal(0, 6, (size, size, 3)), 0, 255)


def scene(rng, size=SIZE):
    """I composited from a smooth background and a checkered ellipse; returns I, true m, clean B."""
    bg = _field(rng, size)
    m = np.zeros((size, size), np.float32)
    c, ax = rng.uniform(0.3, 0.7, 2) * size, rng.uniform(0.15, 0.28, 2) * size
    cv2.ellipse(m, (int(c[0]), int(c[1])), (int(ax[0]), int(ax[1])), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    m = cv2.GaussianBlur(m, (5, 5), 1.0)
    yy, xx = np.mgrid[:size, :size]
    p = int(rng.integers(2, 4))
    fg = np.clip(rng.uniform(0, 255, 3) + 90 * ((yy // p + xx // p) % 2 * 2 - 1)[..., None], 0, 255)
    img = m[..., None] * fg + (1 - m[..., None]) * bg
    return img.astype(np.uint8), m, bg.astype(np.uint8)


def corrupt_mask(rng, m):
    """A bad mask as annotators see them: shifted onto background, half missing, background added, too small."""
    size, kind = m.shape[0], rng.integers(4)
    if kind == 0:
        return np.roll(m, tuple(rng.integers(size // 5, size // 3, 2) * rng.choice([-1, 1], 2)), (0, 1))
    if kind == 1:
        ys, xs = np.nonzero(m > 0.5)
        out = m.copy()
        if rng.integers(2):
            out[:, int(xs.mean()):] = 0
        else:
            out[int(ys.mean()):, :] = 0
        return out
    if kind == 2:
        out = m.copy()
        x0, y0 = rng.integers(0, size // 2, 2)
        out[y0:y0 + size // 2, x0:x0 + size // 2] = 1
        return out
    return cv2.erode(m, np.ones((3, 3)), iterations=max(3, size // 12))


def inpainted(rng, img, m, bg, good):
    """Clean: the true background in the hole. Bad: the object still there as a ghost, smeared in streaks."""
    hole = cv2.dilate((m > 0.1).astype(np.float32), np.ones((5, 5)))[..., None]
    if good:
        fill = bg.astype(np.float32)
    else:
        k = int(m.shape[0] // 4) | 1
        fill = 0.5 * img + 0.5 * cv2.blur(img, (k, 1) if rng.integers(2) else (1, k)).astype(np.float32)
    return (hole * fill + (1 - hole) * img).astype(np.uint8), (hole[..., 0] * 255).astype(np.uint8)


def _png(a):
    return cv2.imencode(".png", a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_RGB2BGR))[1].tobytes()


def members_of(key, img, m8, inpaint_mask, bg, meta):
    fg = np.where((m8 > 25)[..., None], img, 0).astype(np.uint8)
    jpg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    return {"jpg": jpg,
            "fg.png": _png(fg), "mask.png": _png(m8), "inpaint_mask.png": _png(inpaint_mask), "bg.png": _png(bg),
            "txt": f"caption {key}".encode(), "json": json.dumps(meta).encode()}


def make_dataset(out_dir, n_shards, per_shard, seed, rejected_per_shard=0, inline_scores=False):
    """Write synthetic L2I(U) shards; returns the label rows (two per ok sample) and the arrays by key."""
    rng = np.random.default_rng(seed)
    labels, arrays = [], {}
    i = 0
    for s in range(n_shards):
        name = f"{s:05d}_0000"
        samples = []
        for j in range(per_shard + rejected_per_shard):
            key = f"{s:05d}{j:04d}"
            if j >= per_shard:
                samples.append(Sample(key, name, caption="x", meta={"key": key, "url": f"http://x/{key}"},
                                      status="rejected", reason="layers:mask_too_small"))
                continue
            img, m, clean_bg = scene(rng)
            mask_good, inpaint_good = i % 2 == 0, (i // 2) % 2 == 0
            mm = m if mask_good else corrupt_mask(rng, m)
            m8 = np.clip(np.round(mm * 255), 0, 255).astype(np.uint8)
            bg, hole = inpainted(rng, img, m, clean_bg, inpaint_good)
            meta = {"key": key, "url": f"http://x/{key}", "mask_area": float((m8 > 25).mean())}
            if inline_scores:
                meta.update(mask_score=float(mask_good) * 0.8 + 0.1, inpaint_score=0.5)
            samples.append(Sample(key, name, caption=f"caption {key}", meta=meta,
                                  members=members_of(key, img, m8, hole, bg, meta)))
            arrays[key] = {"image": img, "mask": m8.astype(np.float32) / 255, "bg": bg}
            split = "test" if i % 5 in (1, 3) else "train"
            for task, good in (("mask", mask_good), ("inpaint", inpaint_good)):
                labels.append({"key": key, "shard": name, "task": task, "label": "good" if good else "bad",
                               "annotator": "a1", "time": f"2024-01-01T00:{i % 60:02d}:00", "split": split})
            i += 1
        write_output_shard(out_dir, name, samples)
    return labels, arrays


@pytest.fixture(scope="session")
def backbone_file(tmp_path_factory):
    """Seeded random EfficientNet-b0 state dict, 1000-class fc included, as the ImageNet file would be."""
    from efficientnet_pytorch import EfficientNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "efficientnet-b0-random.pth"
    torch.save(EfficientNet.from_name("efficientnet-b0").state_dict(), path)
    return path


@pytest.fixture(scope="session")
def quality_set(tmp_path_factory):
    """~200 labelled synthetic samples in 4 shards, labels as JSONL (mask) and parquet (inpaint)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("quality")
    labels, _ = make_dataset(root / "l2iu", n_shards=4, per_shard=52, seed=1)
    (root / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in labels) + "\n")
    pq.write_table(pa.Table.from_pylist(labels), root / "labels.parquet")
    return root


@pytest.fixture(scope="session")
def trained(quality_set, backbone_file):
    """Both classifiers trained through the CLI; returns {task: checkpoint path} plus the run dir."""
    from l2i_pipeline.cli import main

    ckpts = {}
    for task, export, enc in (("mask", "labels.jsonl", "auto"), ("inpaint", "labels.parquet", None)):
        out = quality_set / "ckpt" / task
        argv = ["classifiers", "train", "--task", task, "--labels", str(quality_set / export),
                "--samples", str(quality_set / "l2iu"), "--out", str(out), "--backbone-weights", str(backbone_file),
                "--image-size", str(SIZE), "--device", "cpu"]
        assert main(argv + (["--encoding", enc] if enc else [])) == 0
        ckpts[task] = out
    return ckpts


@pytest.fixture(scope="session")
def make_l2iu():
    """`make_dataset` for tests (conftest modules are not importable under --import-mode=importlib)."""
    return make_dataset
