"""`l2i download`: LAION-style parquet -> raw WebDataset shards, with img2dataset.

Per shard img2dataset writes `NNNNN.tar` (KEY.jpg holding the *original* bytes, KEY.txt, KEY.json),
`NNNNN.parquet` (every input row: key, status, error_message, LAION columns) and `NNNNN_stats.json`
(written last; a rerun skips shards that have it), to a local path or a storage URL (img2dataset writes
through fsspec itself). Inside img2dataset's workers the adapters of `i2d.py` apply.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import json
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from l2i_pipeline.commands import i2d as adapters
from l2i_pipeline.commands.args import add_config_args, add_lock_arg, add_storage_options_arg
from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.lock import output_lock
from l2i_pipeline.core.outputs import check_output
from l2i_pipeline.core.storage import Store, as_store, open_store
from l2i_pipeline.formats.index import LAION_COLUMNS
from stages.config import load_config

log = logging.getLogger(__name__)

URL_COLUMNS = ("URL", "url")
CAPTION_COLUMNS = ("TEXT", "caption", "text")
MAX_PIXELS = adapters.MAX_PIXELS
DISTRIBUTORS = ("multiprocessing", "ray")
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # workers must be able to import l2i_pipeline
INPUTS_DIR = "_inputs"  # not *.json at the top: img2dataset reads those as finished shards
INPUTS_RECORD = f"{INPUTS_DIR}/inputs.json"


def _input_files(inputs: list[str], storage_options: dict | str | None) -> list[tuple[Store, str]]:
    """(store, object name) of every input parquet, in the order given; folders expand to their *.parquet."""
    files: list[tuple[Store, str]] = []
    for item in inputs:
        store = open_store(item, storage_options)
        if store.fs.isdir(store.root):  # a folder (or bucket prefix) of parquet files
            files += [(store, n) for n in store.list(".parquet")]
            continue
        parent, _, name = store.url.rpartition("/")
        folder = open_store(parent or "/", storage_options)
        if not name.endswith(".parquet") or not folder.exists(name):
            raise NotFound(f"input not found: {item}")
        files.append((folder, name))
    if not files:
        raise NotFound(f"no parquet files in {inputs}")
    return files


def _stage_inputs(files: list[tuple[Store, str]], out: Store) -> Path:
    """Link (or copy, when remote) the inputs in order into one local folder, so img2dataset numbers
    shards across all of them; the list is recorded in the output (`_inputs.json`).

    A rerun must name the same inputs: shard numbers (and so what `incremental` skips) depend on them.
    """
    names = [st.url_of(n) for st, n in files]
    if out.exists(INPUTS_RECORD) and json.loads(out.get(INPUTS_RECORD)) != names:
        raise InputError(f"{out.url} holds a download of other inputs ({out.url_of(INPUTS_RECORD)}); "
                         "use a new output folder")
    if out.local:
        staging = Path(out.root) / "_inputs"
    else:
        key = hashlib.sha1(out.url.encode()).hexdigest()[:16]
        staging = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "l2i" / "download" / key
    staging.mkdir(parents=True, exist_ok=True)
    for link in staging.glob("*.parquet"):
        link.unlink()
    for i, (st, n) in enumerate(files):
        target = staging / f"{i:05d}_{n}"
        if st.local:
            target.symlink_to(st.path(n))
        else:
            target.write_bytes(st.get(n))
    out.put(INPUTS_RECORD, json.dumps(names, indent=1).encode())
    return staging


def _columns(files: list[Path]) -> tuple[str, str | None, list[str]]:
    """(url column, caption column, LAION columns present in every input)."""
    schemas = [set(pq.read_schema(f).names) for f in files]
    common = set.intersection(*schemas)
    url = next((c for c in URL_COLUMNS if c in common), None)
    if url is None:
        raise InputError(f"inputs need a URL column (one of {URL_COLUMNS}); common columns: {sorted(common)}")
    caption = next((c for c in CAPTION_COLUMNS if c in common), None)
    return url, caption, [c for c in LAION_COLUMNS if c in common]


@contextmanager
def _fsspec_defaults(out: Store) -> Iterator[dict[str, str]]:
    """img2dataset opens `out.url` with fsspec itself, without options: make the `--storage-options`
    fsspec's defaults for that protocol, here (`fsspec.config.conf`) and in the workers img2dataset spawns
    (`FSSPEC_<PROTOCOL>`, read by fsspec at import), for the duration of the download. Yields that variable
    for Ray workers. Credentials pass only to this job's own processes; nothing is logged."""
    if out.local or not out.storage_options:
        yield {}
        return
    import fsspec.config

    key, value = f"FSSPEC_{out.protocol.upper()}", json.dumps(out.storage_options)
    saved_conf, saved_env = fsspec.config.conf.get(out.protocol), os.environ.get(key)
    fsspec.config.conf[out.protocol] = {**(saved_conf or {}), **out.storage_options}
    os.environ[key] = value
    try:
        yield {key: value}
    finally:
        if saved_conf is None:
            fsspec.config.conf.pop(out.protocol, None)
        else:
            fsspec.config.conf[out.protocol] = saved_conf
        if saved_env is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved_env


def _init_ray(processes: int, env: dict[str, str]) -> bool:
    """Start a local Ray if none is running; workers get this package on their path. True if started."""
    import ray

    if ray.is_initialized():
        return False
    path = os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": path, "NO_ALBUMENTATIONS_UPDATE": "1", **env}}
    if os.environ.get("RAY_ADDRESS"):  # inside a cluster job: join it; num_cpus is the cluster's business
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=runtime_env)
    else:
        ray.init(num_cpus=processes, include_dashboard=False, runtime_env=runtime_env)
    return True


def download(inputs: list[str], output: str, *, allow_private_network: bool = False, processes: int = 1,
             threads: int = 16, raw_shard_size: int = 10_000, distributor: str = "multiprocessing",
             timeout: float = 10, retries: int = 0, max_pixels: int = MAX_PIXELS,
             storage_options: dict | str | None = None, lock: bool = True) -> dict[str, Any]:
    """Download every URL of `inputs` (parquet files or folders of them, paths or storage URLs) into
    `output` (a path or a storage URL); see `summarize`. `lock`: hold the output's lock (in `_inputs/`), so
    a second download into it is refused."""
    if distributor not in DISTRIBUTORS:
        raise InputError(f"distributor must be one of {DISTRIBUTORS}, not {distributor!r}")
    files = _input_files(inputs, storage_options)
    out = open_store(output, storage_options)
    out.check_writable()
    # the lock sits in _inputs/: img2dataset reads every top-level *.json of the output as a finished shard's
    with output_lock(out.child(INPUTS_DIR), "download", enabled=lock):
        staging = _stage_inputs(files, out)
        if not out.local and out.protocol != "s3":
            # img2dataset ends with fs.rm(OUTPUT/_tmp, recursive=True), which adlfs refuses for a "directory" that
            # holds no blob (a flat store has no empty dirs): a placeholder makes it exist; the rm takes it along
            out.put("_tmp/.l2i-keep", b"")
        url_col, caption_col, extra = _columns(sorted(staging.glob("*.parquet")))
        log.info("downloading %d input file(s) to %s; columns kept: %s; private network %s",
                 len(files), out.url, extra, "ALLOWED" if allow_private_network else "refused")
        os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations phones home on import
        i2d = importlib.import_module("img2dataset.main")  # `import ... as` would get the function img2dataset.main

        if PACKAGE_ROOT not in sys.path:  # spawned workers unpickle SafeDownloader with the parent's sys.path
            sys.path.append(PACKAGE_ROOT)
        with _fsspec_defaults(out) as fsspec_env:
            started_ray = _init_ray(processes, fsspec_env) if distributor == "ray" else False
            original, sigint = i2d.Downloader, signal.getsignal(signal.SIGINT)
            i2d.Downloader = partial(adapters.SafeDownloader, allow_private_network=allow_private_network,
                                     max_pixels=max_pixels)
            try:
                i2d.download(
                    url_list=str(staging), input_format="parquet", url_col=url_col, caption_col=caption_col,
                    save_additional_columns=extra or None, output_folder=out.url, output_format="webdataset",
                    processes_count=processes, thread_count=threads, number_sample_per_shard=raw_shard_size,
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


def summarize(output: str | Path | Store) -> dict[str, Any]:
    """Counts per status and per error reason, read back from each shard's parquet and _stats.json.

    Returns {"shards", "incomplete_shards", "count", "success", "failed_to_download",
    "failed_to_resize", "reasons": {error_message: n}}.
    """
    out = as_store(output)
    listing = out.list()
    status: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    shards, incomplete = 0, []
    for obj in listing:
        if not (obj.endswith(".parquet") and obj[:1].isdigit()):
            continue
        name = obj[: -len(".parquet")]
        if f"{name}_stats.json" not in listing:
            incomplete.append(name)
            continue
        stats = json.loads(out.get(f"{name}_stats.json"))
        table = pq.read_table(io.BytesIO(out.get(obj)), columns=["status", "error_message"]).to_pydict()
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
    check_output(args.output, storage_options=args.storage_options)
    summary = download(args.input, args.output, allow_private_network=args.allow_private_network,
                       processes=args.processes, threads=args.threads, raw_shard_size=args.raw_shard_size,
                       distributor=args.distributor, timeout=args.timeout, retries=args.retries,
                       max_pixels=load_config(args.config, args.set).decode.max_pixels,
                       storage_options=args.storage_options, lock=not args.no_lock)
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
    p.add_argument("--output", required=True, metavar="RAW_DIR",
                   help="output folder, a path or a storage URL (s3://, gs://, ...; created if missing)")
    add_lock_arg(p)
    add_storage_options_arg(p)
    p.add_argument("--distributor", choices=DISTRIBUTORS, default="multiprocessing",
                   help="run shards in local processes or as Ray tasks (default: %(default)s)")
    p.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                   help="shards downloaded at once (default: %(default)s)")
    p.add_argument("--threads", type=int, default=64, help="concurrent downloads per process (default: %(default)s)")
    p.add_argument("--raw-shard-size", type=int, default=10_000,
                   help="input rows per raw shard (default: %(default)s); not the synthesize output shard size")
    add_config_args(p, "synthesize's; download uses decode.max_pixels from it", "decode.max_pixels=50000000")
    p.add_argument("--timeout", type=float, default=10, help="seconds per HTTP request (default: %(default)s)")
    p.add_argument("--retries", type=int, default=0, help="extra attempts per failed URL (default: %(default)s)")
    p.add_argument("--allow-private-network", action="store_true",
                   help="also fetch from loopback/private/link-local hosts (tests, demos, intranet mirrors)")
    p.set_defaults(func=run_download)
