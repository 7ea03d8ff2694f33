"""`l2i download`: LAION-style parquet -> raw WebDataset shards, with img2dataset.

Per shard img2dataset writes `NNNNN.tar` (KEY.jpg holding the *original* bytes, KEY.txt, KEY.json),
`NNNNN.parquet` (every input row: key, status, error_message, LAION columns) and `NNNNN_stats.json`
(written last; a rerun skips shards that have it). Two things are changed inside img2dataset, in each
worker: downloads go through `urlsafety` (no private-network fetches unless allowed), and the
resize/re-encode step is replaced by `KeepBytes`, which keeps the bytes and only reads the header.
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import logging
import os
import signal
import sys
import warnings
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from l2i_pipeline.core.config import DecodeConfig
from l2i_pipeline.core.errors import NotFound
from l2i_pipeline.core.outputs import check_output
from l2i_pipeline.core.shards import LAION_COLUMNS

log = logging.getLogger(__name__)

URL_COLUMNS = ("URL", "url")
CAPTION_COLUMNS = ("TEXT", "caption", "text")
MAX_PIXELS = DecodeConfig.max_pixels  # the same limit synthesize applies (Pillow's default bomb limit)
DISTRIBUTORS = ("multiprocessing", "ray")
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)  # workers must be able to import l2i_pipeline


class KeepBytes:
    """img2dataset "resizer" that returns the downloaded bytes untouched.

    The synthesize stage decodes images itself, so nothing is decoded or re-encoded here; only the
    header is read, so that an empty body, an HTML page or a decompression bomb becomes a recorded
    failure (status failed_to_resize, error_message the reason) instead of a sample.
    """

    def __init__(self, max_pixels: int = MAX_PIXELS):
        self.max_pixels = max_pixels

    def __call__(self, img_stream, blurring_bbox_list=None):
        from PIL import Image

        img_stream.seek(0)
        data = img_stream.read()
        if not data:
            return None, None, None, None, None, "empty body (0 bytes)"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as im:
                    width, height = im.size
        except Image.DecompressionBombError as e:
            return None, None, None, None, None, f"decompression bomb: {e}"
        except Image.UnidentifiedImageError:
            return None, None, None, None, None, "not an image: unrecognised format"
        except Exception as e:  # noqa: BLE001  # any header error is a recorded failure
            return None, None, None, None, None, f"not an image: {type(e).__name__}: {e}"
        if width * height > self.max_pixels:
            return None, None, None, None, None, f"image too large: {width}x{height} > {self.max_pixels} pixels"
        return data, width, height, width, height, None


def _make_safe_downloader():
    """Build the img2dataset Downloader subclass on first use (importing img2dataset takes seconds)."""
    from img2dataset.downloader import Downloader

    from l2i_pipeline.commands.urlsafety import install_in_img2dataset

    class SafeDownloader(Downloader):
        """img2dataset's Downloader with safe fetching and `KeepBytes`, set up in the worker running it."""

        def __init__(self, *args, allow_private_network: bool = False, **kwargs):
            super().__init__(*args, **kwargs)
            self.allow_private_network = allow_private_network
            self.resizer = KeepBytes()

        def download_shard(self, row):
            install_in_img2dataset(self.allow_private_network)
            return super().download_shard(row)

    SafeDownloader.__module__ = __name__  # so pickle finds it as l2i_pipeline.commands.download.SafeDownloader
    SafeDownloader.__qualname__ = "SafeDownloader"
    return SafeDownloader


def __getattr__(name: str):
    # Workers unpickle `l2i_pipeline.commands.download.SafeDownloader` by name; build it lazily there too.
    if name == "SafeDownloader":
        globals()[name] = _make_safe_downloader()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _input_files(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item).resolve()
        if path.is_dir():
            files += sorted(path.glob("*.parquet"))
        elif path.is_file():
            files.append(path)
        else:
            raise NotFound(f"input not found: {item}")
    if not files:
        raise NotFound(f"no parquet files in {inputs}")
    return files


def _stage_inputs(files: list[Path], out: Path) -> Path:
    """Link the inputs, in order, into OUT/_inputs so img2dataset numbers shards across all of them.

    A rerun must name the same inputs: shard numbers (and so what `incremental` skips) depend on them.
    """
    staging = out / "_inputs"
    record = staging / "inputs.json"
    names = [str(f) for f in files]
    if record.exists() and json.loads(record.read_text()) != names:
        raise ValueError(f"{out} holds a download of other inputs ({record}); use a new output folder")
    staging.mkdir(parents=True, exist_ok=True)
    for link in staging.glob("*.parquet"):
        link.unlink()
    for i, f in enumerate(files):
        (staging / f"{i:05d}_{f.name}").symlink_to(f)
    record.write_text(json.dumps(names, indent=1))
    return staging


def _columns(files: list[Path]) -> tuple[str, str | None, list[str]]:
    """(url column, caption column, LAION columns present in every input)."""
    schemas = [set(pq.read_schema(f).names) for f in files]
    common = set.intersection(*schemas)
    url = next((c for c in URL_COLUMNS if c in common), None)
    if url is None:
        raise ValueError(f"inputs need a URL column (one of {URL_COLUMNS}); common columns: {sorted(common)}")
    caption = next((c for c in CAPTION_COLUMNS if c in common), None)
    return url, caption, [c for c in LAION_COLUMNS if c in common]


def _init_ray(processes: int) -> bool:
    """Start a local Ray if none is running; workers get this package on their path. True if started."""
    import ray

    if ray.is_initialized():
        return False
    path = os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=processes, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "NO_ALBUMENTATIONS_UPDATE": "1"}})
    return True


def download(inputs: list[str], output: str, *, allow_private_network: bool = False, processes: int = 1,
             threads: int = 16, samples_per_shard: int = 10_000, distributor: str = "multiprocessing",
             timeout: float = 10, retries: int = 0) -> dict[str, Any]:
    """Download every URL of `inputs` (parquet files or folders of them) into `output`; see `summarize`."""
    if distributor not in DISTRIBUTORS:
        raise ValueError(f"distributor must be one of {DISTRIBUTORS}, not {distributor!r}")
    files = _input_files(inputs)
    out = Path(output).resolve()
    staging = _stage_inputs(files, out)
    url_col, caption_col, extra = _columns(files)
    log.info("downloading %d input file(s) to %s; columns kept: %s; private network %s",
             len(files), out, extra, "ALLOWED" if allow_private_network else "refused")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations phones home on import
    i2d = importlib.import_module("img2dataset.main")  # `import ... as` would get the function img2dataset.main

    if PACKAGE_ROOT not in sys.path:  # spawned workers unpickle SafeDownloader with the parent's sys.path
        sys.path.append(PACKAGE_ROOT)
    started_ray = _init_ray(processes) if distributor == "ray" else False
    original, sigint = i2d.Downloader, signal.getsignal(signal.SIGINT)
    i2d.Downloader = partial(__getattr__("SafeDownloader"), allow_private_network=allow_private_network)
    try:
        i2d.download(
            url_list=str(staging), input_format="parquet", url_col=url_col, caption_col=caption_col,
            save_additional_columns=extra or None, output_folder=str(out), output_format="webdataset",
            processes_count=processes, thread_count=threads, number_sample_per_shard=samples_per_shard,
            distributor=distributor, timeout=timeout, retries=retries, incremental_mode="incremental",
            resize_mode="no", skip_reencode=True, disable_all_reencoding=True,  # KeepBytes replaces it anyway
            enable_wandb=False, compute_hash="sha256", extract_exif=True,
        )
    finally:
        i2d.Downloader = original
        if signal.getsignal(signal.SIGINT) is not sigint and sigint is not None:
            signal.signal(signal.SIGINT, sigint)  # img2dataset installs one that exits with status 0
        if started_ray:
            import ray

            ray.shutdown()
    return summarize(out)


def summarize(output: str | Path) -> dict[str, Any]:
    """Counts per status and per error reason, read back from each shard's parquet and _stats.json.

    Returns {"shards", "incomplete_shards", "count", "success", "failed_to_download",
    "failed_to_resize", "reasons": {error_message: n}}.
    """
    out = Path(output)
    status: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    shards, incomplete = 0, []
    for table_path in sorted(out.glob("[0-9]*.parquet")):
        name = table_path.stem
        stats_path = out / f"{name}_stats.json"
        if not stats_path.exists():
            incomplete.append(name)
            continue
        stats = json.loads(stats_path.read_text())
        table = pq.read_table(table_path, columns=["status", "error_message"]).to_pydict()
        shards += 1
        status.update(table["status"])
        reasons.update(m for m in table["error_message"] if m is not None)
        if len(table["status"]) != stats["count"]:
            log.warning("shard %s: %d rows in parquet, %d in stats", name, len(table["status"]), stats["count"])
        log.info("shard %s: %d rows, %d ok, %d failed to download, %d rejected (%.1f s)", name, stats["count"],
                 stats["successes"], stats["failed_to_download"], stats["failed_to_resize"],
                 stats["end_time"] - stats["start_time"])
    if incomplete:
        log.warning("%d shard(s) without _stats.json (incomplete; rerun to redo): %s", len(incomplete), incomplete)
    return {"shards": shards, "incomplete_shards": incomplete, "count": sum(status.values()),
            "success": status["success"], "failed_to_download": status["failed_to_download"],
            "failed_to_resize": status["failed_to_resize"], "reasons": dict(reasons.most_common())}


def format_summary(summary: dict[str, Any], width: int = 72) -> str:
    """The end-of-run table: rows per status, then rows per failure reason."""
    lines = [f"{'status':<{width}} {'rows':>7}"]
    for key in ("success", "failed_to_download", "failed_to_resize"):
        lines.append(f"{key:<{width}} {summary[key]:>7}")
    lines.append(f"{'total (' + str(summary['shards']) + ' shards)':<{width}} {summary['count']:>7}")
    if summary["reasons"]:
        lines += ["", f"{'failure reason':<{width}} {'rows':>7}"]
        for reason, n in summary["reasons"].items():
            text = reason if len(reason) <= width else reason[: width - 1] + "…"
            lines.append(f"{text:<{width}} {n:>7}")
    return "\n".join(lines)


def run_download(args: argparse.Namespace) -> int:
    """CLI entry: 0 when every shard completed and at least one image arrived, else 1."""
    check_output(args.output)
    try:
        summary = download(args.input, args.output, allow_private_network=args.allow_private_network,
                           processes=args.processes, threads=args.threads, samples_per_shard=args.samples_per_shard,
                           distributor=args.distributor, timeout=args.timeout, retries=args.retries)
    except ValueError as e:  # missing URL column, output holding another download
        log.error("%s", e)
        return 2
    print(format_summary(summary), file=sys.stdout)
    if summary["incomplete_shards"]:
        log.error("incomplete shards: %s; rerun the same command to finish them", summary["incomplete_shards"])
        return 1
    if summary["count"] and not summary["success"]:
        log.error("no image was downloaded; see the failure reasons above")
        return 1
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "download", help="download LAION-style parquet URLs into raw WebDataset shards (img2dataset)",
        description="Download the images of LAION-style parquet files (URL, TEXT and the LAION columns "
        "similarity, hash, punsafe, pwatermark, aesthetic/AESTHETIC_SCORE, WIDTH, HEIGHT) with img2dataset "
        "into RAW_DIR as NNNNN.tar (original image bytes, caption, json), NNNNN.parquet (every input row "
        "with status and error_message) and NNNNN_stats.json. Rerunning the same command skips finished "
        "shards. URLs other than http(s), and hosts resolving to private, loopback, link-local (cloud "
        "metadata) or other non-public addresses, redirects included, are refused and recorded as failures.",
        epilog="example: l2i download --input laion_part_*.parquet --output raw/ --processes 8 --threads 64")
    p.add_argument("--input", nargs="+", required=True, metavar="PARQUET",
                   help="parquet file(s) or folder(s) of them; shards are numbered across them in this order")
    p.add_argument("--output", required=True, metavar="RAW_DIR", help="output folder (created if missing)")
    p.add_argument("--distributor", choices=DISTRIBUTORS, default="multiprocessing",
                   help="run shards in local processes or as Ray tasks (default: %(default)s)")
    p.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                   help="shards downloaded at once (default: %(default)s)")
    p.add_argument("--threads", type=int, default=64, help="concurrent downloads per process (default: %(default)s)")
    p.add_argument("--samples-per-shard", type=int, default=10_000,
                   help="input rows per output shard (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=10, help="seconds per HTTP request (default: %(default)s)")
    p.add_argument("--retries", type=int, default=0, help="extra attempts per failed URL (default: %(default)s)")
    p.add_argument("--allow-private-network", action="store_true",
                   help="also fetch from loopback/private/link-local hosts (tests, demos, intranet mirrors)")
    p.set_defaults(func=run_download)
