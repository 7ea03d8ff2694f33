"""Test helpers: raw shards in img2dataset's layout, built in code (no network, no img2dataset).

Imported by tests as `rawshards` (pytest puts tests/ on sys.path, see pyproject.toml)."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def jpeg_bytes(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def scene(seed: int, size: int = 160) -> np.ndarray:
    """A textured background with one bright disc: an easy salient object."""
    rng = np.random.default_rng(seed)
    h, w = size, int(size * 1.25)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([60 + 20 * np.sin(xx / 9 + seed), 90 + 15 * np.cos(yy / 7), 70 + 10 * np.sin((xx + yy) / 11)], 2)
    bg = bg + rng.normal(0, 4, bg.shape)
    cy, cx, r = h / 2 + rng.integers(-10, 10), w / 2 + rng.integers(-10, 10), h / 4
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
    img = np.where(disc[..., None], np.array([230, 60 + 10 * (seed % 5), 40]), bg)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_raw_shard(raw_dir: Path, name: str, rows: list[dict]) -> None:
    """rows: {key, status, error_message?, caption, url, image: bytes|None, **laion columns}."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(raw_dir / f"{name}.tar", "w") as tf:
        for r in rows:
            if r["status"] != "success":
                continue
            meta = {k: v for k, v in r.items() if k != "image"}
            for ext, data in (("jpg", r["image"]), ("txt", r["caption"].encode()), ("json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(f"{r['key']}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    table = [{k: v for k, v in r.items() if k != "image"} for r in rows]
    for t in table:
        t.setdefault("error_message", None)
    pq.write_table(pa.Table.from_pylist(table), raw_dir / f"{name}.parquet")


def make_rows(n: int, start: int = 0, shard: int = 0, extra: dict[int, dict] | None = None) -> list[dict]:
    rows = []
    for i in range(start, start + n):
        key = f"{shard:05d}{i:04d}"
        row = {"key": key, "status": "success", "error_message": None, "caption": f"a red ball number {i}",
               "url": f"http://example.test/{key}.jpg", "similarity": 0.3, "punsafe": 0.01, "pwatermark": 0.1,
               "AESTHETIC_SCORE": 6.1, "WIDTH": 200, "HEIGHT": 160, "image": jpeg_bytes(scene(i))}
        row.update((extra or {}).get(i, {}))
        rows.append(row)
    return rows


def output_members(out) -> dict[str, bytes]:
    """Every tar member and every parquet row of the complete L2I shards under `out` (a path, URL or Store):
    what "the same output" means when a resumed run is compared with an uninterrupted one."""
    from l2i_pipeline.core.shards import list_output_shards, read_tar
    from l2i_pipeline.core.storage import as_store

    store = as_store(out)
    names = list_output_shards(store)
    tars = {f"{n}/{k}.{ext}": data for n in names
            for k, members in read_tar(store, f"{n}.tar").members.items() for ext, data in members.items()}
    parquets = {f"{n}.parquet:rows": repr(pq.read_table(io.BytesIO(store.get(f"{n}.parquet"))).to_pylist()).encode()
                for n in names}
    return {**tars, **parquets}


def write_scene_shard(d: Path, size: int, n: int = 6) -> Path:
    """A raw shard of `n` shape scenes (l2i_pipeline/demo/peel_scenes.py), two each of 1, 2 and 3 apart objects."""
    from l2i_pipeline.demo.peel_scenes import shape_scene

    rows = make_rows(n)
    for i, row in enumerate(rows):
        row["image"] = jpeg_bytes(shape_scene(i, 1 + i % 3, size=size)[0])
    write_raw_shard(d, "00000", rows)
    return d
