"""A sample's commit marker, `OUT/<id>/meta.json`: written last, it vouches for the size and sha256 of each
of the sample's files (core/commit.py `file_record`), as an L2I shard's marker does for its files.

`verified_ids` is what a rerun of `l2i sample` trusts: one recursive listing and each marker; a sample whose
listed files disagree with its marker (one missing or of another size) is torn and redone. `read_checked` is
how a reader (`l2i eval`) reads a file whole: a file whose size or digest differs from the marker's (a torn
or foreign write, even of the same size) is an error naming it. A marker of an older `l2i sample` lists the
file names only: their presence is checked, not their bytes; a dir without markers is read as it is.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from l2i_pipeline.core.commit import file_record
from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.storage import Store

META = "meta.json"


class TornSample(InputError):
    """A sample file that does not match its marker."""


def marker(fields: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
    """The marker of a sample: its fields and {file name: size and sha256} of every file it vouches for."""
    return {**fields, "files": {name: file_record(data) for name, data in sorted(files.items())}}


def _records(meta: dict[str, Any]) -> dict[str, dict | None]:
    files = meta.get("files") or {}
    return dict(files) if isinstance(files, dict) else {name: None for name in files}


def mismatch(sid: str, meta: dict[str, Any], listing: dict[str, int]) -> str | None:
    """Why sample `sid`'s listed files ({name below OUT: size}) disagree with its marker, or None."""
    for name, want in sorted(_records(meta).items()):
        path = f"{sid}/{name}"
        if path not in listing:
            return f"{path} is missing"
        if want is not None and listing[path] != want["size"]:
            return f"{path} is {listing[path]} bytes, its marker {sid}/{META} says {want['size']}"
    return None


def verified_ids(out: Store) -> tuple[dict[str, dict], dict[str, str]]:
    """({id: marker} of the whole samples, {torn id: why}), from one recursive listing and each marker."""
    listing = out.find()
    good: dict[str, dict] = {}
    torn: dict[str, str] = {}
    for name in listing:
        if name.count("/") != 1 or not name.endswith(f"/{META}"):
            continue
        sid = name.rsplit("/", 1)[0]
        try:
            meta = json.loads(out.get(name))
            problem = mismatch(sid, meta, listing)
        except (ValueError, AttributeError, KeyError, TypeError) as e:  # not a json object with sizes
            meta, problem = {}, f"unreadable marker {name}: {type(e).__name__}: {e}"
        if problem:
            torn[sid] = problem
        else:
            good[sid] = meta
    return good, torn


def read_checked(store: Store, sid: str, name: str) -> bytes:
    """`OUT/<sid>/<name>` read whole and checked against the size and sha256 its marker records (when the
    sample has a marker with digests); a mismatch is a TornSample naming the file."""
    data = store.get(f"{sid}/{name}")
    try:
        meta = json.loads(store.get(f"{sid}/{META}"))
    except NotFound:
        return data
    want = _records(meta).get(name)
    if want and (len(data) != want["size"] or hashlib.sha256(data).hexdigest() != want["sha256"]):
        raise TornSample(f"{store.url_of(f'{sid}/{name}')} does not match its marker {sid}/{META} (size "
                         f"{len(data)} vs {want['size']}): a torn or foreign write; rerun `l2i sample` into it")
    return data
