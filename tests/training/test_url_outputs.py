"""Outputs a command writes through the local filesystem only: a URL is refused with one line, and no
local directory named `s3:` appears (item: `--out s3://...` used to create one). `l2i train --out URL`
writes to the bucket (test_url_run_dir.py)."""
from __future__ import annotations

import pytest

from l2i_pipeline.cli import main

URL = "s3://bucket/out"


@pytest.mark.parametrize("argv", [
    ["sample", "--model", "m", "--prompt", "a red ball", "--out", URL],
    ["eval", "--samples", "s", "--out", URL],
    ["eval", "--samples", "s", "--out", "o", "--ref-cache", URL],
    ["eval", "compare", "d1", "--output", URL],
    ["eval", "prompts", "--real", "DATA", "--out", URL],
], ids=["sample", "eval", "eval-ref-cache", "eval-compare", "eval-prompts"])
def test_a_url_output_is_refused_in_one_line(argv, l2i_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = main([str(l2i_dir) if a == "DATA" else a for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "must be a local path" in err[0] and URL in err[0] and "s3://" in err[0]
    assert not (tmp_path / "s3:").exists() and list(tmp_path.iterdir()) == []
