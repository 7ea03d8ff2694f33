"""The WebDataset tar, deterministic: the same members give the same bytes (USTAR headers, mtime 0, mode
0644, no owner), which is what lets a resumed or retried shard be checked byte for byte.

A member is `KEY.NAME` (names.py); a key's members are consecutive. The L2I shard's tar holds the paper's
members in their order, then any others sorted by name (`sample_tar`), so shards made with the defaults
keep the bytes they had before the optional members existed.
"""
from __future__ import annotations

import io
import logging
import os
import tarfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from l2i_pipeline.formats.names import MEMBERS

log = logging.getLogger(__name__)

Files = Iterable[tuple[str, bytes]]  # (member name, data), in tar order


def write_tar(files: Files) -> bytes:
    """An uncompressed tar of `files` in the given order, byte for byte the same for the same files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def member_order(members: Iterable[str]) -> list[str]:
    """A sample's member names in tar order: the paper's (names.MEMBERS) first, then the others sorted."""
    members = set(members)
    return [*MEMBERS, *sorted(members - set(MEMBERS))]


def sample_tar(samples: Iterable[tuple[str, dict[str, bytes]]]) -> bytes:
    """The L2I tar of (key, {name: bytes}) samples, in the given order; every name of MEMBERS is required."""
    return write_tar((f"{key}.{name}", members[name]) for key, members in samples for name in member_order(members))


def split_name(path: str) -> tuple[str, str]:
    """A tar member's path -> (key, member name): `dir/KEY.fg.png` -> ("KEY", "fg.png")."""
    key, _, name = os.path.basename(path).partition(".")
    return key, name


class _TailReader:
    """Wraps a stream for tarfile and keeps the last 1024 bytes seen, to check the end-of-archive marker."""

    def __init__(self, f: BinaryIO):
        self.f, self.tail = f, b""

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.tail = (self.tail + data)[-1024:]
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def iter_tar_stream(raw: BinaryIO, label: str, errors: list[str], check_end: bool = True,
                    cut: list[str] | None = None) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The tar reader behind every tar read: (key, {name: bytes}) per sample. A damaged stream ends at the
    damage: every sample before it is yielded, the sample being read there (its members may be incomplete)
    is dropped, its key appended to `cut` and the error to `errors`. An intact uncompressed tar ends in zero
    blocks; one cut off exactly at a header boundary does not, and tarfile alone accepts it.
    """
    key, group = None, {}
    try:
        f = _TailReader(raw)
        with tarfile.open(fileobj=f, mode="r|*") as tf:
            for info in tf:
                if not info.isfile():
                    continue
                k, ext = split_name(info.name)
                if k != key:  # the previous sample is complete: hand it out before reading on
                    if group:
                        yield key, group
                    key, group = k, {}
                data = tf.extractfile(info).read()
                if len(data) != info.size:
                    raise tarfile.ReadError(f"member {info.name} cut short")
                group[ext] = data
        f.drain()
        if check_end and f.tail != bytes(1024):
            raise tarfile.ReadError("unexpected end of archive (no end-of-archive marker)")
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        errors.append(f"{type(e).__name__}: {e}")
        if key is not None and cut is not None:
            cut.append(key)
        log.warning("tar %s is damaged (%s); sample %s lost, the samples before it kept", label, errors[-1], key)
        return
    if group:
        yield key, group


def member_offsets(f: BinaryIO, keys: set[str]) -> dict[str, dict[str, tuple[int, int]]]:
    """{key: {name: (offset of its data, size)}} for the wanted keys of a seekable tar; reads headers only
    (tarfile seeks past the data), so one member is later one ranged read."""
    found: dict[str, dict[str, tuple[int, int]]] = {}
    with tarfile.open(fileobj=f, mode="r:") as tf:
        for info in tf:
            if not info.isfile():
                continue
            key, name = split_name(info.name)
            if key in keys:
                found.setdefault(key, {})[name] = (info.offset_data, info.size)
    return found
