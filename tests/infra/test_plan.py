"""`l2i plan`: the paper-size plan from the committed figures, overrides, real shard sizes, one-line errors."""
from __future__ import annotations

import json
import math
import os
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
    assert "1.00M inputs -> 500.00k downloaded -> 500.00k synthesized -> 500.00k kept" in out
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
    assert measure_shards(str(raw))["bytes_per_ok"] == raw_size / 4
    out = plan(capsys, "--inputs", "2e6", "--shards", str(l2i), "--raw", str(raw))
    assert f"{size / 4 * 1e6 / 1e9:,.1f} GB /M" in out and "measured: 4 samples in 2 shards" in out
    assert f"{raw_size / 4 * 1e6 / 1e9:,.1f} GB /M" in out and "measured: 4 images in 1 shards" in out


@pytest.mark.parametrize("argv, message", [
    (["--rate", "inpaint"], "expected NAME=NUMBER"),
    (["--rate", "warp=3"], "unknown stage or yield ['warp']"),
    (["--price", "gpu=1"], "--price: unknown ['gpu']"),
    (["--figures", "/nonexistent/figures.json"], "figures file not found"),
    (["--hours", "0"], "must be positive"),
    (["--yield", "download=1.5"], "a fraction in (0, 1]"),
    (["--bandwidth-gbps", "0"], "--bandwidth-gbps must be positive"),
])
def test_bad_arguments_are_one_line_errors(capsys, argv, message):
    assert main(["plan", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("l2i plan: error: ") and message in err and "\n" not in err


def test_empty_shard_dir_is_an_error(tmp_path: Path, capsys):
    assert main(["plan", "--shards", str(tmp_path)]) == 2
    assert "no complete shards" in capsys.readouterr().err


def _line(out: str, start: str, has: str = "") -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(start) and has in line)


def _tb(line: str, n: int = 0) -> float:
    return float(re.findall(r"([\d,.]+) TB", line)[n].replace(",", ""))


def test_yield_download_scales_raw_bytes_and_ingress(capsys):
    full, half = plan(capsys, "--inputs", "1e8"), plan(capsys, "--inputs", "1e8", "--yield", "download=0.5")
    for start in ("raw shards", "in from the web"):
        assert _tb(_line(half, start), -1) == pytest.approx(_tb(_line(full, start), -1) / 2, rel=0.01)
    assert "100.00M inputs -> 50.00M downloaded" in half


def test_yield_synthesize_lowers_the_inpainting_gpu_hours_not_saliency(capsys):
    full, half = plan(capsys, "--inputs", "1e8"), plan(capsys, "--inputs", "1e8", "--yield", "synthesize=0.5")
    assert f"{1e8 / 4.6 / 3600:,.0f}" in row(full, "inpaint") and f"{0.5e8 / 4.6 / 3600:,.0f}" in row(half, "inpaint")
    assert row(full, "decode") == row(half, "decode")  # decode, saliency, layers see every downloaded image
    figs = load_figures(default_figures_path())
    e2e, sd2 = figs["end_to_end"]["synthesize"]["rate"], figs["rates"]["inpaint"]["rate"]
    expected = (1e8 * (1 / e2e - 1 / sd2) + 0.5e8 / sd2) / 3600  # SD2 only for samples past the mask checks
    assert f"{expected:,.0f} GPU-hours" in half and f"{1e8 / e2e / 3600:,.0f} GPU-hours" in full


def test_download_nodes_bound_by_bandwidth_and_the_chain_wall_clock(capsys):
    out = plan(capsys, "--inputs", "1e8", "--rate", "download=1000", "--bandwidth-gbps", "1", "--hours", "10")
    raw_tb = _tb(_line(out, "in from the web"))
    node_h = raw_tb * 1e12 * 8 / 1e9 / 3600
    line = _line(out, "download ", "nodes")
    assert "bound by bandwidth" in line and re.search(rf"\s{math.ceil(node_h / 10)} CPU nodes", line), line
    walls = [float(w.replace(",", "")) for w in re.findall(r"([\d,.]+) h$", line)]
    walls += [float(w.replace(",", "")) for w in re.findall(r"([\d,.]+) h$", _line(out, "synthesize ", "nodes"))]
    chain = _line(out, "whole chain")
    total = float(re.search(r"= ([\d,.]+) h", chain).group(1).replace(",", ""))
    assert total == pytest.approx(sum(walls), abs=0.15) and "score (not measured)" in chain


def test_request_counts_follow_the_commit_protocol(capsys):
    from l2i_pipeline.commands.plan_requests import count_requests

    reqs = {(r.store, r.job): r for r in count_requests(
        20_000, 20_000, 10_000, 5_000, raw_image_bytes=1000, l2i_sample_bytes=2000, raw_shard_size=10_000,
        output_shard_size=1000, pipeline_batch=16)}
    assert reqs[("raw", "download")].put == 2 * 3  # 2 raw shards: tar, parquet, _stats.json (10 MB: one request)
    parts = math.ceil(1000 / 16) + 1
    synth = reqs[("L2I(U)", "synthesize")]  # 20 output shards
    assert (synth.put, synth.get, synth.delete) == (20 * (parts + 3), 20 * parts, 20 * parts)
    assert reqs[("L2I", "filter")].put == 5 * 3
    big = count_requests(10_000, 10_000, 10_000, 10_000, raw_image_bytes=100_000, l2i_sample_bytes=1,
                         raw_shard_size=10_000, output_shard_size=1000, pipeline_batch=16)
    assert big[0].put == math.ceil(1e9 / (50 * 2**20)) + 2  # a 1 GB tar: one request per 50 MiB block
    out = plan(capsys, "--inputs", "1e6")
    assert re.search(r"L2I\(U\)\s+synthesize\s+[\d,]+\s+[\d,]+", out) and "the lock (2 PUT + 1 DELETE probe" in out


README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- l2i plan sample: begin (tests/infra/test_plan.py) -->", "<!-- l2i plan sample: end -->"


def test_readme_sample_is_the_current_output(capsys, monkeypatch):
    """The README's `l2i plan` block is this output; L2I_UPDATE_README=1 rewrites it instead of failing."""
    monkeypatch.delenv("L2I_FIGURES", raising=False)
    text = README.read_text()
    head, _, rest = text.partition(BEGIN)
    block, _, tail = rest.partition(END)
    cmd = re.search(r"^\$ (l2i plan.*)$", block, re.M)
    assert cmd, "the README's plan block starts with its `$ l2i plan ...` line"
    argv = cmd.group(1).split("#")[0].split()[2:]
    expected = f"\n```\n$ {cmd.group(1)}\n{plan(capsys, *argv).rstrip()}\n```\n"
    if os.environ.get("L2I_UPDATE_README") == "1":
        README.write_text(head + BEGIN + expected + END + tail)
        return
    assert block == expected, "README's `l2i plan` sample is stale: rerun this test with L2I_UPDATE_README=1"
