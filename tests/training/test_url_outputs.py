"""Outputs a command writes through the local filesystem only: a URL is refused with one line, and no
local directory named `s3:` appears (item: `--out s3://...` used to create one). `l2i train --out URL`,
`l2i sample --out URL` and `l2i eval --out URL` write to the bucket (test_url_run_dir.py,
ldm/test_model_url.py, eval/test_eval_url.py)."""
from __future__ import annotations

import pytest

from l2i_pipeline.cli import main

URL = "s3://bucket/out"


@pytest.mark.parametrize("argv", [
    ["export", "--input", "DATA", "--format", "png", "--out", URL],
], ids=["export"])
def test_a_url_output_is_refused_in_one_line(argv, l2i_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = main([str(l2i_dir) if a == "DATA" else a for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "must be a local path" in err[0] and URL in err[0] and "s3://" in err[0]
    assert not (tmp_path / "s3:").exists() and list(tmp_path.iterdir()) == []
