import pytest

from l2i_pipeline.core.config import ConfigError, load_config


def test_defaults_follow_the_paper():
    cfg = load_config()
    assert cfg.resolution == 512 and cfg.layers.threshold == 0.1
    assert cfg.saliency.backend == "classical" and cfg.inpaint.backend == "telea"


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
