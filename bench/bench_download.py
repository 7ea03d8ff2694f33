"""`l2i download` against the plain img2dataset it wraps, on the same URLs served on 127.0.0.1.

Both run as child processes with the same img2dataset settings (1 process, --threads threads, one shard,
no resize or re-encode, sha256, EXIF, the LAION columns kept); `l2i download` adds its URL-safety checks
(scheme, redirect and address checks, with --allow-private-network since the server is on loopback) and
`KeepBytes`. Prints wall and user+system CPU of each run (children included) and the l2i/plain ratio of the
medians; asserts nothing. Usage: python bench/bench_download.py [--urls 2000] [--threads 64] [--repeats 2]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from l2i_pipeline.demo.httpserve import LoopbackServer  # noqa: E402
from l2i_pipeline.demo.inputs import write_laion_parquet  # noqa: E402
from l2i_pipeline.formats.index import LAION_COLUMNS  # noqa: E402

DISTINCT = 64  # distinct JPEGs, served under --urls names


def write_images(directory: Path, n: int, seed: int = 0) -> list[str]:
    """n files of `DISTINCT` different 384x288 JPEGs (~30 KB, a LAION thumbnail's size); returns the names."""
    rng = np.random.default_rng(seed)
    blobs = []
    for _ in range(DISTINCT):
        small = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)  # smooth colour fields compress like photos
        img = Image.fromarray(small).resize((384, 288), Image.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        blobs.append(buf.getvalue())
    directory.mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        (directory / name).write_bytes(blobs[i % DISTINCT])
    return names


PLAIN = """
import sys
from img2dataset import download
columns = {columns!r}
download(url_list=sys.argv[1], input_format="parquet", url_col="URL", caption_col="TEXT",
         save_additional_columns=columns, output_folder=sys.argv[2], output_format="webdataset",
         processes_count=1, thread_count={threads}, number_sample_per_shard=10_000, distributor="multiprocessing",
         timeout=10, retries=0, incremental_mode="incremental", resize_mode="no", skip_reencode=True,
         disable_all_reencoding=True, enable_wandb=False, compute_hash="sha256", extract_exif=True)
"""


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, user CPU s, system CPU s) of one command, its descendants included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"{cmd[:3]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def successes(out: Path) -> int:
    return sum(json.loads(p.read_text())["successes"] for p in out.glob("*_stats.json"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--urls", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each, alternating (default: %(default)s)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="l2i_bench_dl_"))
    names = write_images(work / "www", args.urls)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
           "NO_ALBUMENTATIONS_UPDATE": "1"}
    columns = [c for c in LAION_COLUMNS if c != "aesthetic"]  # the columns write_laion_parquet makes
    print(f"{args.urls} URLs on 127.0.0.1, 1 process x {args.threads} threads; {os.cpu_count()} CPUs")
    walls: dict[str, list[float]] = {"img2dataset": [], "l2i download": []}
    users: dict[str, list[float]] = {"img2dataset": [], "l2i download": []}
    with LoopbackServer(work / "www") as server:
        parquet = write_laion_parquet(work / "urls.parquet", [server.url(n) for n in names],
                                      [f"caption {n}" for n in names])
        for r in range(args.repeats):
            for tool in walls:
                out = work / f"out_{tool.split()[0]}_{r}"
                shutil.rmtree(out, ignore_errors=True)
                if tool == "img2dataset":
                    code = PLAIN.format(columns=columns, threads=args.threads)
                    cmd = [sys.executable, "-c", code, str(parquet), str(out)]
                else:
                    cmd = [sys.executable, "-m", "l2i_pipeline.cli", "download", "--input", str(parquet),
                           "--output", str(out), "--processes", "1", "--threads", str(args.threads),
                           "--allow-private-network"]
                wall, user, system = run(cmd, env)
                ok = successes(out)
                walls[tool].append(wall)
                users[tool].append(user)
                print(f"  run {r + 1} {tool:<13} wall {wall:6.1f} s  user {user:6.1f} s  sys {system:5.1f} s  "
                      f"{ok}/{args.urls} ok  {ok / wall:5.0f} img/s")
    print(f"\n{'':<14}{'wall s':>8}{'user s':>8}   (medians of {args.repeats}; process start included)")
    for tool in walls:
        print(f"{tool:<14}{statistics.median(walls[tool]):>8.1f}{statistics.median(users[tool]):>8.1f}")
    ratio = statistics.median(walls["l2i download"]) / statistics.median(walls["img2dataset"])
    user_ratio = statistics.median(users["l2i download"]) / statistics.median(users["img2dataset"])
    print(f"l2i / plain: wall {ratio:.2f}x, user CPU {user_ratio:.2f}x (target: wall <= 1.1x)")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
