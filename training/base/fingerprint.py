"""A short, stable identity of a model directory, so outputs made from one model are never mixed with another's."""
from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def dir_fingerprint(path: str | Path) -> str:
    """sha256 over the file names and configs, and per weight file its size and first and last MiB."""
    root = Path(path)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        h.update(str(p.relative_to(root)).encode())
        if p.suffix in WEIGHT_SUFFIXES:
            size = p.stat().st_size
            with p.open("rb") as f:
                h.update(str(size).encode() + f.read(1 << 20))
                f.seek(max(0, size - (1 << 20)))
                h.update(f.read())
        else:
            h.update(p.read_bytes())
    return h.hexdigest()[:16]
