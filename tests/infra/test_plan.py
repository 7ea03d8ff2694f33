"""`l2i plan`: the paper-size plan from the committed figures, overrides, real shard sizes, one-line errors."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from l2i_pipeline.cli import main
from l2i_pipeline.commands.plan import default_figures_path, load_figures, measure_shards


def plan(capsys, *argv: str) -> str:
    assert main(["plan", *argv]) == 0
    return capsys.readouterr().out


def row(out: str, stage: str) -> str:
    return next(line for line in out.splitlines() if re.match(rf"\w+\s+{stage}\s", line))


def test_figures_file_names_a_source_for_every_number():
    figs = load_figures(default_figures_path())
    for name, f in figs["rates"].items():
        assert f["per"] in {"cpu", "gpu"} and f["job"] in {"download", "synthesize", "score"}, name
        assert f["rate"] is None or f["rate"] > 0, name
        assert f["source"] and f["hardware"], name
    for section in ("yields", "storage"):
        assert all(v["source"] and v["value"] > 0 for v in figs[section].values())
    assert figs["paper_run"] == {**figs["paper_run"], "inputs": 600_000_000, "kept": 57_020_000}


def test_paper_run_plan(capsys):
    out = plan(capsys)
    assert "600.00M inputs" in out and "57.02M kept" in out
    inpaint_h = 600e6 / 4.6 / 3600  # SD2 stage, H100, issue 16
    assert f"{inpaint_h:,.0f}" in row(out, "inpaint")
    assert "not measured" in row(out, "saliency")
    e2e_h = 600e6 / 2.68 / 3600
    assert f"{e2e_h:,.0f} GPU-hours" in out
    nodes = math.ceil(e2e_h / (168 * 8))
    assert re.search(rf"synthesize\s+{nodes} GPU nodes", out)
    figs = load_figures(default_figures_path())
    per_m = figs["storage"]["l2i_bytes_per_sample"]["value"] * 1e6 / 1e9
    assert re.search(rf"L2I shards\s+{per_m:,.1f} GB /M", out)


def test_overrides(capsys):
    out = plan(capsys, "--inputs", "1e6", "--rate", "saliency=50", "--rate", "inpaint=10", "--yield", "download=0.5",
               "--hours", "10", "--gpus-per-node", "1", "--price", "gpu_hour=2")
    assert "1.00M inputs -> 500.00k synthesized -> 500.00k kept" in out
    gpu_h = 0.5e6 / 50 / 3600 + 0.5e6 / 10 / 3600
    assert f"GPU-hours (stages with a rate): {gpu_h:,.0f}" in out
    assert "end-to-end" not in out  # the measured pipeline rate no longer describes these stages
    assert re.search(rf"synthesize\s+{math.ceil(gpu_h / 10)} GPU nodes", out)
    assert "--rate (command line)" in row(out, "inpaint")
    assert "gpu_hour" in out.split("cost")[1]


def write_shard(d: Path, name: str, stats: dict, tar: int = 1000, parquet: int = 300) -> int:
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.tar").write_bytes(b"t" * tar)
    (d / f"{name}.parquet").write_bytes(b"p" * parquet)
    marker = json.dumps(stats).encode()
    (d / f"{name}_stats.json").write_bytes(marker)
    return tar + parquet + len(marker)


def test_measure_shards_counts_complete_shards_only(tmp_path: Path, capsys):
    l2i = tmp_path / "l2i"
    size = write_shard(l2i, "00000_0000", {"count": 4, "status": {"ok": 3, "rejected": 1}})
    size += write_shard(l2i, "00001_0000", {"count": 2, "status": {"ok": 1, "rejected": 1}}, tar=500)
    (l2i / "00002_0000.tar").write_bytes(b"x" * 10_000)  # no marker: an interrupted shard, not counted
    m = measure_shards(str(l2i))
    assert (m["shards"], m["rows"], m["ok"], m["bytes"]) == (2, 6, 4, size)
    raw = tmp_path / "raw"
    raw_size = write_shard(raw, "00000", {"count": 5, "successes": 4, "failed_to_download": 1})
    assert measure_shards(str(raw))["bytes_per_row"] == raw_size / 5
    out = plan(capsys, "--inputs", "2e6", "--shards", str(l2i), "--raw", str(raw))
    assert f"{size / 4 * 1e6 / 1e9:,.1f} GB /M" in out and "measured: 4 samples in 2 shards" in out
    assert f"{raw_size / 5 * 1e6 / 1e9:,.1f} GB /M" in out


@pytest.mark.parametrize("argv, message", [
    (["--rate", "inpaint"], "expected NAME=NUMBER"),
    (["--rate", "warp=3"], "unknown stage or yield ['warp']"),
    (["--price", "gpu=1"], "--price: unknown ['gpu']"),
    (["--figures", "/nonexistent/figures.json"], "figures file not found"),
    (["--hours", "0"], "must be positive"),
])
def test_bad_arguments_are_one_line_errors(capsys, argv, message):
    assert main(["plan", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("l2i plan: error: ") and message in err and "\n" not in err


def test_empty_shard_dir_is_an_error(tmp_path: Path, capsys):
    assert main(["plan", "--shards", str(tmp_path)]) == 2
    assert "no complete shards" in capsys.readouterr().err
