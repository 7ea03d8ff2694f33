"""`l2i stats`: counts, Table IV caption percentiles, Fig. 17/18 mask figures, the plot."""
from l2i_pipeline.cli import main
from l2i_pipeline.commands.stats import caption_tokens, collect
from l2i_pipeline.engine.synthesize import synthesize
from stages.config import load_config


def test_caption_tokens_drop_stopwords_and_punctuation():
    assert caption_tokens("A red ball, on the table!!") == 3  # red, ball, table
    assert caption_tokens("") == 0 and caption_tokens(None) == 0
    assert caption_tokens("Ünïcode  café — 2024") == 3


def test_stats_of_a_synthesized_dir(raw_dir, tmp_path, capsys):
    out = tmp_path / "l2i"
    synthesize(raw_dir, out, load_config(None, ["resolution=96", "output_shard_size=4"]), runner="local")
    r = collect(out)
    assert r["samples"] == 12 and r["status"] == {"ok": 11, "rejected": 1}
    assert r["reasons"] == {"download:HTTP Error 404: Not Found": 1}
    assert r["masks_read"] == 11 and all(len(v) == 11 for v in r["mask_area"].values())
    areas = r["mask_area"]
    assert all(a >= b for a, b in zip(areas["0.1"], areas["0.7"]))  # higher threshold, smaller area
    assert r["caption_tokens"]["ok samples"]["50"] == 4  # "a red ball number N": red, ball, number, N
    assert collect(out, max_masks=3)["masks_read"] == 3
    assert main(["stats", str(out), "--plot", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "download:HTTP Error 404" in printed and "Table IV" in printed
