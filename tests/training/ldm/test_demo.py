"""The training half of `make demo`: tiny AE -> encode -> tiny LDM -> .ora samples, on CPU."""
import zipfile

import pyarrow.parquet as pq
import pytest


@pytest.mark.slow
def test_training_demo(l2i_dir, tmp_path):
    from training.jobs.demo import format_summary, run_training_demo

    paths = run_training_demo(l2i_dir, tmp_path / "work", ae_steps=12, ldm_steps=12, prompts=["a dog", "a cat"])
    assert paths["n_ora"] == "2"
    z = zipfile.ZipFile(paths["ora"])
    assert z.infolist()[0].filename == "mimetype" and z.read("mimetype") == b"image/openraster"
    assert len(pq.read_table(paths["index"])) == 2
    assert "pipeline" in format_summary(paths)
    again = run_training_demo(l2i_dir, tmp_path / "work", ae_steps=12, ldm_steps=12, prompts=["a dog", "a cat"])
    assert again == paths  # a rerun resumes: everything already there
