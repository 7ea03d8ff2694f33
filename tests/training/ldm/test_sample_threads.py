"""`l2i sample --threads N`: torch's intra-op threads of the sampling process, as train.cpu_threads."""
import torch

from l2i_pipeline.cli import main


def test_threads_sets_torchs_threads_and_a_negative_count_is_refused(tiny_pipeline_dir, tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        args = ["sample", "--runner", "local", "--model", str(tiny_pipeline_dir), "--prompt", "a cat", "--n", "1",
                "--steps", "1"]
        assert main(args + ["--out", str(tmp_path / "s"), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        capsys.readouterr()
        assert main(args + ["--out", str(tmp_path / "t"), "--threads", "-1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--threads must be >= 0" in err[0]
    finally:
        torch.set_num_threads(before)
