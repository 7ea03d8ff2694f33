"""`l2i train ae --data gs://|az:// --storage-options JSON`: the options reach the data reads (the emulators'
endpoint and credentials exist only there) and are never recorded in run.json."""
from __future__ import annotations

import json

from l2i_pipeline.cli import main
from l2i_pipeline.core.storage import open_store


def test_train_ae_reads_the_bucket_through_the_options(l2i_dir, emulated_store, tmp_path, capsys):
    opts = emulated_store.options
    url = f"{emulated_store.new_bucket()}/l2i"
    bucket = open_store(url, opts)
    for f in l2i_dir.iterdir():
        if f.is_file():
            bucket.put(f.name, f.read_bytes())
    args = ["train", "ae", "--runner", "local", "--preset", "tiny", "--set", "train.steps=1", "--set",
            "log.progress=false", "--set", "ckpt.every=1", "--data", url, "--out", str(tmp_path / "run")]
    assert main([*args, "--storage-options", opts]) == 0, capsys.readouterr().err
    run = (tmp_path / "run" / "run.json").read_text()
    secrets = [v for v in json.loads(opts).values() if isinstance(v, str) and len(v) > 8]
    assert secrets and not [s for s in secrets if s in run]
    assert json.loads(run)["config"]["data"]["storage_options"] == "(given, not recorded)"
    assert main([*args, "--storage-options", opts, "--set", f"data.storage_options={opts}"]) == 2
    assert "--storage-options and data.storage_options both given" in capsys.readouterr().err
