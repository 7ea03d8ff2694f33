"""An fsspec store whose conditional create is ignored (it overwrites), as some emulators and S3-compatible
servers do: `nocreate://NAME`, in memory, in this process only. Imported by tests as `fakestores`."""
from __future__ import annotations

import uuid

import fsspec
from fsspec.implementations.memory import MemoryFileSystem

PROTOCOL = "nocreate"


class OverwritingCreateFS(MemoryFileSystem):
    protocol = PROTOCOL
    store: dict = {}  # its own objects, not memory://'s
    pseudo_dirs = [""]

    def pipe_file(self, path, value, mode="overwrite", **kwargs):
        super().pipe_file(path, value, mode="overwrite", **kwargs)  # mode="create" silently ignored


fsspec.register_implementation(PROTOCOL, OverwritingCreateFS, clobber=True)


def new_url() -> str:
    return f"{PROTOCOL}://l2i-{uuid.uuid4().hex[:12]}"
