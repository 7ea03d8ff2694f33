"""Issue 26 peeling in the reports: `l2i stats` depth histogram, the contact sheet's layers, `l2i plan`'s
passes from a measured depth; old (unpeeled) outputs report as before."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rawshards import write_scene_shard

from l2i_pipeline.cli import main
from l2i_pipeline.commands.demo import contact_sheet
from l2i_pipeline.commands.stats import collect, format_report
from l2i_pipeline.core.shards import iter_output_samples, list_output_shards
from l2i_pipeline.engine.synthesize import synthesize
from stages.config import load_config


@pytest.fixture(scope="module")
def peeled(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("peel")
    write_scene_shard(root / "raw", size=128)
    synthesize(root / "raw", root / "l2i", load_config(None, [
        "resolution=128", "saliency.backend=classical", "layers.count=3", "layers.dilate_kernel=5"]), runner="local")
    return root / "l2i"


def _depths(out: Path) -> list[int]:
    return [json.loads(m["json"])["depth"] for n in list_output_shards(out) for _, m in iter_output_samples(out, n)]


def test_stats_show_the_depth_histogram(peeled):
    r = collect(peeled)
    depths = _depths(peeled)
    assert r["depth"] == {str(d): depths.count(d) for d in sorted(set(depths))}
    assert sum(r["peel_stopped"].values()) >= 1  # a scene of fewer objects than layers.count says why
    report = format_report(r)
    assert "layers per ok sample (depth" in report and "peeling stopped: saliency:no_salient_object" in report


def test_stats_of_an_unpeeled_output_have_no_depth(raw_dir, tmp_path):
    synthesize(raw_dir, tmp_path / "l2i", load_config(None, ["resolution=96", "saliency.backend=classical"]),
               runner="local")
    r = collect(tmp_path / "l2i")
    assert "depth" not in r and "layers per ok sample" not in format_report(r)


def test_the_contact_sheet_shows_every_layer(peeled, tmp_path):
    n = contact_sheet(peeled, tmp_path / "sheet.png", size=64)
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    assert n == 6 and sheet.shape[1] == (1 + 3 * max(_depths(peeled))) * 64


def test_plan_counts_the_inpainting_passes_of_the_measured_depth(peeled, capsys):
    def inpaint_items(out: str) -> str:
        return next(line for line in out.splitlines() if re.match(r"\w+\s+inpaint\s", line)).split()[4]

    assert main(["plan", "--inputs", "1e6"]) == 0
    plain = capsys.readouterr().out
    assert main(["plan", "--inputs", "1e6", "--shards", str(peeled)]) == 0
    out = capsys.readouterr().out
    depths = _depths(peeled)
    assert f"peeling measured on {len(depths)} samples" in out
    passes = float(re.search(r"per synthesized sample ([\d.]+) inpainting", out).group(1))
    assert passes >= np.mean(depths) - 1e-9 and passes > 1
    assert inpaint_items(out) != inpaint_items(plain)


def test_filter_copies_every_layer_of_the_kept_samples(peeled, tmp_path):
    import shutil

    from l2i_pipeline.core.sidecars import write_sidecar

    src = tmp_path / "u"
    shutil.copytree(peeled, src)
    for name in list_output_shards(src):
        keys = [k for k, _ in iter_output_samples(src, name)]
        write_sidecar(src, name, {k: {"mask_score": 0.9 if i % 2 == 0 else 0.1} for i, k in enumerate(keys)}, {})
    assert main(["filter", "--input", str(src), "--output", str(tmp_path / "o"), "--min-mask-score", "0.5"]) == 0
    before = {k: m for n in list_output_shards(src) for k, m in iter_output_samples(src, n)}
    after = {k: m for n in list_output_shards(tmp_path / "o") for k, m in iter_output_samples(tmp_path / "o", n)}
    assert after and all(after[k] == before[k] for k in after)  # every member, l{k}.* included, byte for byte
    assert any("l2.bg.png" in m for m in after.values())
