"""Bad inputs served on loopback, through `l2i download` then `l2i synthesize`: every row once, with a reason."""
import pyarrow.parquet as pq

from l2i_pipeline.commands.download import download
from l2i_pipeline.core.shards import read_output_index
from l2i_pipeline.demo.httpserve import LoopbackServer
from l2i_pipeline.demo.inputs import OK, bad_inputs, photos, write_files, write_laion_parquet
from l2i_pipeline.engine.synthesize import synthesize
from stages.config import load_config


def test_bad_inputs_through_download_and_synthesize(tmp_path):
    files = photos()[:2] + bad_inputs()
    write_files(tmp_path / "www", files)
    with LoopbackServer(tmp_path / "www") as server:
        urls = [server.url(f.filename) for f in files] + [server.url("missing.jpg")]
        parquet = write_laion_parquet(tmp_path / "in.parquet", urls, [f.description for f in files] + ["gone"])
        dl = download([str(parquet)], str(tmp_path / "raw"), allow_private_network=True, threads=4,
                      raw_shard_size=8, timeout=5)
    assert dl["count"] == len(urls) and not dl["incomplete_shards"]
    summary = synthesize(tmp_path / "raw", tmp_path / "l2i", load_config(None, ["resolution=128"]), runner="local")
    assert summary["samples"] == len(urls)
    rows = {r["url"]: r for r in read_output_index(tmp_path / "l2i").to_pylist()}
    assert len(rows) == len(urls)  # every input row exactly once
    for f, url in zip(files, urls):
        r = rows[url]
        if f.expected == OK:  # decoded and converted; only the mask-area check may still reject it
            assert r["status"] == "ok" or r["reason"].startswith("layers:"), (f.filename, r["reason"])
            assert r["status"] == "ok" or f.filename not in ("cmyk.jpg", "exif_rotated.jpg")
        else:
            assert r["status"] == "rejected" and r["reason"], f.filename
            assert r["reason"].startswith(("download:", "decode:", "saliency:no_salient_object")), (f.filename, r)
    assert rows[urls[-1]]["reason"].startswith("download:HTTP Error 404")
    reasons = [r["reason"] for r in rows.values() if r["reason"] and r["reason"] != "saliency:no_salient_object"]
    assert len(set(reasons)) == len(reasons)  # each failure has its own reason (no-object images share one)
    exif = rows[urls[[f.filename for f in files].index("exif_rotated.jpg")]]
    assert exif["orig_width"] == 451 and exif["orig_height"] == 300  # rotated, not rejected


def test_private_network_refused_by_default(tmp_path):
    files = photos()[:1]
    write_files(tmp_path / "www", files)
    with LoopbackServer(tmp_path / "www") as server:
        parquet = write_laion_parquet(tmp_path / "in.parquet", [server.url(files[0].filename)], ["x"])
        download([str(parquet)], str(tmp_path / "raw"), threads=2, timeout=5)
        assert not server.requests  # refused before any connection
    t = pq.read_table(tmp_path / "raw" / "00000.parquet").to_pylist()
    assert t[0]["status"] == "failed_to_download" and "refused" in t[0]["error_message"]
    summary = synthesize(tmp_path / "raw", tmp_path / "l2i", load_config(), runner="local")
    assert summary["reasons"] and next(iter(summary["reasons"])).startswith("download:refused")
