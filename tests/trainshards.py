"""Test helpers for tests/training: damage L2I tars, the quiet tiny config.

Imported by tests as `trainshards` (pytest puts tests/ on sys.path, see pyproject.toml)."""
from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

from l2i_pipeline.core.typedconfig import with_defaults
from training.base.config import TrainConfig, load_train_config


def rewrite_tar(path: Path, change: Callable[[str, bytes], bytes | None]) -> None:
    """Rewrite a tar member by member: change(name, data) -> new bytes, or None to drop the member."""
    with tarfile.open(path) as tf:
        members = [(m.name, tf.extractfile(m).read()) for m in tf if m.isfile()]
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            new = change(name, data)
            if new is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(new)
            tf.addfile(info, io.BytesIO(new))


def tiny_config(*overrides: str) -> TrainConfig:
    """The tiny preset, quiet, reading in the test process unless a test asks for loader workers."""
    return load_train_config("tiny", None, with_defaults(["data.num_workers=0", "log.progress=false"], list(overrides)))
