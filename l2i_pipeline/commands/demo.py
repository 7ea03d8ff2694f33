"""`l2i demo`: the whole job, offline on CPU, in a few minutes.

Real photographs (scikit-image ships them) plus the bad-input set are served from a loopback HTTP
server, downloaded with `l2i download`, synthesized on a local Ray, summarised with `l2i stats`, and
drawn as DIR/contact_sheet.png (one row per sample: I | m | F | B, then m_k | F_k | B_k for each further
layer with `--set layers.count=2..4`). Then the training half on those shards: a tiny CaT2I-AE,
`l2i encode`, a tiny LDM (its text encoder built in DIR/training), `l2i sample` with layered `.ora` files,
and `l2i eval` on its own samples (offline: the mask IOU against the classical saliency backend; every
other metric named with the weight file it needs).
"""
from __future__ import annotations

import argparse
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from l2i_pipeline.core.shards import iter_output_samples, list_output_shards
from l2i_pipeline.demo.inputs import bad_inputs, photos, write_files, write_laion_parquet
from stages.config import load_config

log = logging.getLogger(__name__)


def build_input(workdir: Path, base_url: str) -> Path:
    """LAION-style parquet over the served files, plus a URL that 404s and one that is not http(s)."""
    files = photos() + bad_inputs()
    write_files(workdir / "www", files)
    urls = [f"{base_url}/{f.filename}" for f in files] + [f"{base_url}/missing.jpg", "ftp://example.com/a.jpg"]
    captions = [f.description for f in files] + ["a photo that is not on the server", "not an http url"]
    return write_laion_parquet(workdir / "input" / "laion_demo.parquet", urls, captions)


@contextmanager
def demo_server(workdir: Path) -> Iterator:  # LoopbackServer, started
    """The loopback server on the port the workdir's input parquet already names, when there is one.

    The port is part of every URL, and so of the downloaded rows: a rerun that served on another port
    would see other inputs. Reusing the port makes the parquet byte-identical and the rerun a resume."""
    from urllib.parse import urlsplit

    import pyarrow.parquet as pq

    from l2i_pipeline.demo.httpserve import LoopbackServer

    port, parquet = 0, workdir / "input" / "laion_demo.parquet"
    if parquet.exists():
        urls = pq.read_table(parquet, columns=["URL"]).column(0).to_pylist()
        port = urlsplit(urls[0]).port or 0 if urls else 0
    try:
        server = LoopbackServer(workdir / "www", port=port).start()
    except OSError as e:  # taken by something else: a fresh port; download then redoes the rows it changes
        log.warning("port %d of the previous demo run is taken (%s); serving on another one", port, e)
        server = LoopbackServer(workdir / "www").start()
    try:
        yield server
    finally:
        server.stop()


def _tile(img: np.ndarray, size: int) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def contact_sheet(l2i_dir: Path, path: Path, size: int = 192, max_rows: int = 24) -> int:
    """One row per ok sample: I | m | F | B, then m_k | F_k | B_k for each further layer of a peeled
    sample (layers.count > 1), with the key, caption and depth above. Returns rows drawn."""
    from PIL import ImageDraw

    from l2i_pipeline.formats.decode import depth_of
    from l2i_pipeline.formats.names import BG, FG, JPG, MASK, TXT, member

    rows, deepest = [], 1
    for name in list_output_shards(l2i_dir):
        if len(rows) >= max_rows:
            break
        for key, m in iter_output_samples(l2i_dir, name):
            if len(rows) >= max_rows:
                break
            depth = depth_of(m)
            deepest = max(deepest, depth)
            names = [JPG] + [member(k, n) for k in range(1, depth + 1) for n in (MASK, FG, BG)]
            tiles = [np.asarray(Image.open(io.BytesIO(m[n])).convert("RGB")) for n in names]
            strip = np.concatenate([_tile(t, size) for t in tiles], axis=1)
            label = Image.new("RGB", (strip.shape[1], 18), "white")
            caption = m[TXT].decode("utf-8", "replace")
            text = f"{key}  {caption}"[:110] + (f"  (depth {depth})" if depth > 1 else "")
            ImageDraw.Draw(label).text((4, 3), text, fill="black")
            rows.append(np.concatenate([np.asarray(label), strip], axis=0))
    if not rows:
        return 0
    width = (1 + 3 * deepest) * size
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    header = Image.new("RGB", (width, 20), (230, 230, 230))
    draw = ImageDraw.Draw(header)
    titles = ["I (image)", "m (mask)", "F (foreground)", "B (background)"]
    titles += [t for k in range(2, deepest + 1) for t in (f"m{k} (layer {k})", f"F{k}", f"B{k}")]
    for i, title in enumerate(titles):
        draw.text((i * size + 4, 4), title, fill="black")
    sheet = np.concatenate([np.asarray(header)] + rows, axis=0)
    Image.fromarray(sheet).save(path)
    return len(rows)


def run_demo(args: argparse.Namespace) -> int:
    from l2i_pipeline.commands.download import download, format_summary
    from l2i_pipeline.commands.stats import collect, format_report, plot
    from l2i_pipeline.commands.synthesize import print_summary
    from l2i_pipeline.engine.synthesize import synthesize

    workdir = Path(args.workdir).resolve()
    cfg = load_config(args.config, args.set)
    (workdir / "www").mkdir(parents=True, exist_ok=True)
    with demo_server(workdir) as server:
        parquet = build_input(workdir, server.base_url)
        log.info("serving %s at %s", workdir / "www", server.base_url)
        summary = download([str(parquet)], str(workdir / "raw"), allow_private_network=True, processes=1,
                           threads=8, raw_shard_size=args.raw_shard_size, timeout=10)
    print("\n== l2i download ==\n" + format_summary(summary))
    result = synthesize(workdir / "raw", workdir / "l2i", cfg, runner=args.runner, ray_address=args.ray_address,
                        num_cpus=args.num_cpus)
    print("\n== l2i synthesize ==")
    print_summary(result)
    report = collect(workdir / "l2i")
    print("\n== l2i stats ==\n" + format_report(report))
    plot(report, workdir / "l2i" / "stats.png")
    n = contact_sheet(workdir / "l2i", workdir / "contact_sheet.png")
    where = (f"raw shards:    {workdir / 'raw'}\nL2I(U) shards: {workdir / 'l2i'}\n"
             f"contact sheet: {workdir / 'contact_sheet.png'} ({n} samples)\n"
             f"stats plot:    {workdir / 'l2i' / 'stats.png'}")
    if args.no_training:
        print("\n" + where)
        return 0
    print("\n" + where + "\n" + run_training_half(workdir))
    return 0


def run_training_half(workdir: Path) -> str:
    """Tiny CaT2I-AE -> encode -> tiny LDM -> sample (.ora) -> eval on its own samples; returns the summary."""
    from training.eval.run import EvalConfig, evaluate
    from training.jobs.demo import format_summary as training_summary
    from training.jobs.demo import run_training_demo

    paths = run_training_demo(workdir / "l2i", workdir / "training")
    print("\n== l2i train ae -> l2i encode -> l2i train ldm -> l2i sample ==")
    report = evaluate(EvalConfig(samples=paths["samples"], real=str(workdir / "l2i"), out=str(workdir / "eval"),
                                 test_fraction=0.1, max_real=200))
    print("\n== l2i eval ==\n" + (Path(report["out"]) / "metrics.md").read_text())
    return training_summary(paths) + f"\neval:            {report['out']}/metrics.md"


def register(sub: argparse._SubParsersAction) -> None:
    from l2i_pipeline.commands.args import add_config_args, add_runner_args

    p = sub.add_parser("demo", help="the whole mission offline: download, synthesize, stats, train, sample, eval",
                       description=__doc__)
    p.add_argument("--workdir", default="demo_out", help="where raw/, l2i/ and contact_sheet.png go")
    add_runner_args(p, "synthesize on Ray Data (the training half runs in this process either way)")
    p.add_argument("--raw-shard-size", type=int, default=10, help="rows per downloaded raw shard (demo: small)")
    p.add_argument("--no-training", action="store_true",
                   help="stop after the dataset half (skip train ae -> encode -> train ldm -> sample -> eval)")
    add_config_args(p, "synthesize's keys: `l2i synthesize --help`", "saliency.backend=classical")
    p.set_defaults(func=run_demo)
