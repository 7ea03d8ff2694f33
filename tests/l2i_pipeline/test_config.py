import re

import pytest

from stages.config import ConfigError, load_config


def test_defaults_follow_the_paper():
    cfg = load_config()
    assert cfg.resolution == 512 and cfg.layers.threshold == 0.1
    assert cfg.saliency.backend == "u2netp" and cfg.inpaint.backend == "telea"  # offline defaults (issue 24)


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("resolution: 256\nlayers:\n  threshold: 0.2\n")
    cfg = load_config(p, ["layers.threshold=0.3", "inpaint.backend=sd2", "saliency.weights=/w/ICON-Res.weight"])
    assert cfg.resolution == 256 and cfg.layers.threshold == 0.3 and cfg.inpaint.backend == "sd2"
    assert cfg.saliency.weights == "/w/ICON-Res.weight"


@pytest.mark.parametrize("override,msg", [
    ("resolutoin=3", "unknown config key 'resolutoin'"),
    ("layers.threshold=abc", "expected float"),
    ("layers.threshold=1.5", "threshold"),
    ("layers=3", "is a section"),
    ("output_shard_size=2.5", "expected int"),
    ("noequals", "key=value"),
])
def test_bad_overrides_name_the_key(override, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config(None, [override])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("override,msg", [
    ("layers.dilate_kernel=100000", "'layers.dilate_kernel' = 100000: allowed 1..101"),
    ("layers.dilate_iterations=-1", "dilate_iterations"),
    ("inpaint.radius=-3", "inpaint.radius"),
    ("inpaint.feather=-1", "inpaint.feather"),
    ("resolution=-512", "resolution"),
    ("jpeg_quality=1000", "'jpeg_quality' = 1000: allowed 1..100"),
    ("saliency.device=tpu", "saliency.device"),
    ("score.device=cuda:x", "score.device"),
    ("inpaint.dtype=int4", "inpaint.dtype"),
    ("layers.threshold=nan", "layers.threshold"),
    ("layers.max_area=2", "layers.max_area"),
    ("layers.min_area=1.5", "layers.min_area"),
    ("saliency.num_gpus=-1", "saliency.num_gpus"),
    ("inpaint.compile_mode=fastest", "inpaint.compile_mode"),
    ("inpaint.vae_batch_size=0", "inpaint.vae_batch_size"),
])
def test_values_outside_their_range_are_refused_before_work(override, msg):
    """Issue 17: every numeric key has a range (listed by `l2i synthesize --help`), devices and dtypes are names."""
    with pytest.raises(ConfigError, match=re.escape(msg)):
        load_config(None, [override])


@pytest.mark.parametrize("text,msg", [
    (b"layers:\n  threshold: 0.2\n  threshold: 0.3\n", "line 3: key 'threshold' given twice"),
    (b"resolution: 256\nresolution: 128\n", "key 'resolution' given twice"),
    (b"layers: [unclosed\n", "not valid YAML"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not text"),
    (b"- just\n- a list\n", "must hold a mapping"),
])
def test_bad_config_files_are_one_line_errors(tmp_path, text, msg):
    p = tmp_path / "c.yaml"
    p.write_bytes(text)
    with pytest.raises(ConfigError, match=re.escape(msg)) as e:
        load_config(p)
    assert "\n" not in str(e.value)


def test_help_lists_every_range(capsys):
    from l2i_pipeline.cli import main
    from stages.config import RANGES

    with pytest.raises(SystemExit):
        main(["synthesize", "--help"])
    out = capsys.readouterr().out
    assert all(key in out for key in RANGES) and "layers.dilate_kernel = 15  (1..101)" in out
