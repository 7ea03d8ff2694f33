"""`l2i ls DIR`: the URLs of the complete shards of a dataset, one per line, for stock readers.

Stock WebDataset readers (webdataset, HF `datasets`, Ray Data) read every `.tar` they are given and know
nothing of the `NAME_stats.json` markers, so a shard being written, torn or left behind by a crash would
be read like any other. This lists only the shards whose marker exists and whose files, as listed, have
the sizes the marker vouches for (`core.shards.verified_shards`); feed its output to the reader.
"""
from __future__ import annotations

import argparse
import logging

from l2i_pipeline.commands.args import add_storage_options_arg
from l2i_pipeline.core.errors import NotFound
from l2i_pipeline.core.shards import verified_shards
from l2i_pipeline.core.storage import open_store
from l2i_pipeline.formats.names import TAR

log = logging.getLogger(__name__)


def complete_urls(location: str, storage_options: dict | str | None = None,
                  suffix: str = TAR) -> tuple[list[str], dict[str, str]]:
    """(URLs of the `suffix` files of the complete shards at `location`, {torn shard left out: why})."""
    store = open_store(location, storage_options)
    if not store.exists():
        raise NotFound(f"directory not found: {store.url}")
    good, torn = verified_shards(store)
    listing = store.list(suffix)
    urls = [store.url_of(f"{n}{suffix}") for n in good if f"{n}{suffix}" in listing]
    unmarked = sorted(set(listing) - {f"{n}{suffix}" for n in [*good, *torn]})
    if unmarked:
        log.warning("%d %s file(s) without a marker (being written, or left by a crash) left out: %s",
                    len(unmarked), suffix, ", ".join(unmarked[:5]) + (" ..." if len(unmarked) > 5 else ""))
    if not urls and not torn:
        raise NotFound(f"no complete shards ({suffix} with a _stats.json marker) in {store.url}")
    return urls, torn


def run_ls(args: argparse.Namespace) -> int:
    """Print the URLs; exit 1 when a torn shard was left out, else 0."""
    urls, torn = complete_urls(args.dir, args.storage_options, "." + args.suffix.lstrip("."))
    for name, why in torn.items():
        log.error("shard %s does not match its marker (%s): left out; rerun the job that wrote it", name, why)
    for url in urls:
        print(url)
    return 1 if torn else 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ls", help="print the URLs of the complete shards of a dataset (for webdataset, HF datasets, Ray Data)",
        description="Print one URL per complete shard of DIR (a path or a storage URL): shards whose "
        "NAME_stats.json marker exists and whose files have the sizes it records. Stock readers do not look at "
        "the markers; give them this list instead of a glob. Exit status 1 when a torn shard was left out.",
        epilog="example: l2i ls s3://bucket/l2i > shards.txt; "
        "python -c 'import webdataset as wds; wds.WebDataset(open(\"shards.txt\").read().split())'")
    p.add_argument("dir", metavar="DIR", help="L2I(U) or raw download folder, a path or a storage URL")
    p.add_argument("--suffix", default="tar", help="which file of each shard to print (default: %(default)s)")
    add_storage_options_arg(p)
    p.set_defaults(func=run_ls)
