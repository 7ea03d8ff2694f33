"""Shared fixtures. Helpers live in tests/rawshards.py."""
from pathlib import Path

import pytest
from rawshards import make_rows, write_raw_shard


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """Two raw shards of 7 and 5 rows; one failed download in the first."""
    d = tmp_path / "raw"
    write_raw_shard(d, "00000", make_rows(7, extra={3: {"status": "failed_to_download",
                                                          "error_message": "HTTP Error 404: Not Found",
                                                          "image": None}}))
    write_raw_shard(d, "00001", make_rows(5, shard=1))
    return d
