"""A training run dir at a URL (`l2i train ae|ldm --out s3://...`): no shared filesystem needed.

Each process (the driver, each rank) trains in its own local working copy, under $L2I_RUN_CACHE (default
~/.cache/l2i/runs), that is never the truth: `pull()` drops its checkpoints, then fetches `run.json`,
`metrics.jsonl` and the newest committed checkpoint from the store, so every rank on every node resumes
from the same step. Rank 0 `commit()`s at each checkpoint: the checkpoint's files and the export (`ae/`,
`pipeline/`) are uploaded whole (`Store.put`), each tree then committed by a marker written last
(`NAME.done.json`: every file's size and sha256), then `metrics.jsonl`, new validation images and
`run.json`; checkpoints beyond `ckpt.keep` are removed marker first. A kill at any moment leaves the store
at the last committed checkpoint, which is what a rerun resumes from (docs/TRAINING.md, "Resume").
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

from l2i_pipeline.core.errors import NotFound, StorageError
from l2i_pipeline.core.storage import Store, open_store, split_protocol

log = logging.getLogger(__name__)

CACHE_ENV = "L2I_RUN_CACHE"
MARKER = ".done.json"
STEP_MARKER = re.compile(r"^(step_\d{7,})\.done\.json$")
FILES = ("run.json", "metrics.jsonl")


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "l2i" / "runs").expanduser()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pull_tree(store: Store, name: str, dest: Path, marker: bytes | None = None) -> None:
    """The committed tree `name` of `store` (its marker lists the files) into `dest`, each file checked."""
    listing = json.loads(marker if marker is not None else store.get(name + MARKER))
    tmp = dest.with_name(f".pull_{dest.name}_{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, want in sorted(listing["files"].items()):
        data = store.get(f"{name}/{rel}")
        if len(data) != want["size"] or _sha256(data) != want["sha256"]:
            raise StorageError(f"{store.url_of(name)}/{rel} does not match its marker {store.url_of(name + MARKER)} "
                               f"(size {len(data)}, want {want['size']}): rerun the job that wrote it")
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(data)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def fetched(location: str | os.PathLike, storage_options: dict | str | None = None) -> Path:
    """A model dir to load: a local path as it is; a URL, an export a URL run dir committed (RUN/ae,
    RUN2/pipeline, with `NAME.done.json` beside it), fetched once into $L2I_RUN_CACHE/models/ with every
    file checked against that marker (fetched again when the marker changes)."""
    protocol, path = split_protocol(os.fspath(location))
    if protocol == "file":
        return Path(path)
    url = os.fspath(location).rstrip("/")
    parent, name = url.rsplit("/", 1)
    store = open_store(parent, storage_options)
    if not store.exists(name + MARKER):
        raise NotFound(f"{url} is not a committed export (no {name}{MARKER} beside it): give RUN/ae or "
                       f"RUN2/pipeline of an `l2i train ... --out URL` run, or a local directory")
    marker = store.get(name + MARKER)
    dest = cache_root() / "models" / f"{_sha256(url.encode())[:16]}-{name}"
    seen = dest.with_name(dest.name + MARKER)
    if not (dest.is_dir() and seen.is_file() and seen.read_bytes() == marker):
        pull_tree(store, name, dest, marker)
        seen.write_bytes(marker)
    return dest


class RunStore:
    """The run dir at `url` and this process's local working copy of it (`local`)."""

    def __init__(self, url: str, storage_options: dict | str | None = None, who: str = "driver"):
        self.store: Store = open_store(url, storage_options)
        tag = _sha256(self.store.url.encode())[:16]
        self.local = cache_root() / f"{tag}-{self.store.url.rstrip('/').rsplit('/', 1)[-1]}" / who

    @property
    def url(self) -> str:
        return self.store.url

    # ------------------------------------------------------------ reading
    def committed_steps(self) -> list[str]:
        """Names (step_NNNNNNN) of the checkpoints whose marker is in the store, oldest first."""
        found = [STEP_MARKER.match(n) for n in self.store.child("checkpoints").list(MARKER)]
        return sorted(m.group(1) for m in found if m)

    def pull(self) -> Path:
        """Make the local copy what the store holds: its files and newest committed checkpoint."""
        self.store.check_writable()  # one clear error before any work: bucket, credentials, permission
        self.local.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.local / "checkpoints", ignore_errors=True)  # never resume from an uncommitted one
        for name in FILES:
            path = self.local / name
            if self.store.exists(name):
                path.write_bytes(self.store.get(name))
            else:
                path.unlink(missing_ok=True)
        steps = self.committed_steps()
        if steps:
            (self.local / "checkpoints").mkdir()
            pull_tree(self.store, f"checkpoints/{steps[-1]}", self.local / "checkpoints" / steps[-1])
            log.info("resuming from %s", self.store.url_of(f"checkpoints/{steps[-1]}"))
        return self.local

    # ------------------------------------------------------------ writing
    def push_file(self, name: str) -> None:
        path = self.local / name
        if path.is_file():
            self.store.put(name, path.read_bytes())

    def push_tree(self, src: Path, name: str) -> None:
        """Every file under `src` to `name/`, then `name.done.json` (sizes, sha256) last."""
        files = {}
        for path in sorted(p for p in Path(src).rglob("*") if p.is_file()):
            rel = path.relative_to(src).as_posix()
            data = path.read_bytes()
            self.store.put(f"{name}/{rel}", data)
            files[rel] = {"size": len(data), "sha256": _sha256(data)}
        self.store.put(name + MARKER, json.dumps({"files": files}, indent=1, sort_keys=True).encode())

    def commit(self, step_dir: Path | None, export_dir: Path | None, keep: int) -> None:
        """Rank 0, after each local checkpoint: the checkpoint, the export, metrics, new val images, run.json
        (`step_dir` None: the export alone, made again at the end of a run that had nothing left to train)."""
        if step_dir is not None:
            self.push_tree(step_dir, f"checkpoints/{step_dir.name}")
        if export_dir is not None and export_dir.is_dir():
            self.store.delete(export_dir.name + MARKER)  # readers never pair the old marker with new files
            self.push_tree(export_dir, export_dir.name)
        val = self.store.child("val")
        have = set(val.list(".png"))
        for png in sorted((self.local / "val").glob("*.png")):
            if png.name not in have:
                val.put(png.name, png.read_bytes())
        for name in FILES:
            self.push_file(name)
        for old in self.committed_steps()[:-keep]:
            self.store.delete(f"checkpoints/{old}{MARKER}")
            self.store.delete_tree(f"checkpoints/{old}")


def commit_hook(runs: RunStore, keep: int):
    """The loop's `Context.on_checkpoint` for a URL run dir."""
    def on_checkpoint(step_dir: Path | None, export_dir: Path | None) -> None:
        runs.commit(step_dir, export_dir, keep)
    return on_checkpoint
