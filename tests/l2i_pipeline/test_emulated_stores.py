"""gs:// (fake-gcs-server) and az:// (Azurite) on 127.0.0.1, credentials and endpoint only in
--storage-options: the lock probe, then synthesize -> stats. Skipped when an emulator is not installed."""

from l2i_pipeline.cli import main
from l2i_pipeline.core.lock import output_lock
from l2i_pipeline.core.shards import read_output_index
from l2i_pipeline.core.storage import open_store


def test_synthesize_and_stats_through_the_emulator(emulated_store, raw_dir, capsys):
    opts = emulated_store.options
    out_url = f"{emulated_store.new_bucket()}/l2i"
    out = open_store(out_url, opts)
    argv = ["synthesize", "--input", str(raw_dir), "--output", out_url, "--runner", "local", "--storage-options",
            opts, "--set", "resolution=96", "--set", "saliency.backend=classical"]
    with output_lock(out, "synthesize"):  # both emulators honour conditional creates: the probe passes
        assert main(argv) == 2  # and a second job is refused by the lock
        assert "another `l2i synthesize` is writing to" in capsys.readouterr().err
    rc = main(argv)
    assert rc == 0, capsys.readouterr().err
    assert len(read_output_index(out).to_pylist()) == 12
    assert main(["stats", out_url, "--max-masks", "5", "--storage-options", opts]) == 0
