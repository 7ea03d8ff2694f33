"""data.fg=rgba (issue 26): F' and alpha from shards made with layers.alpha=matting; clear error otherwise."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from rawshards import make_rows, write_raw_shard
from trainshards import tiny_config

from l2i_pipeline.core.errors import ConfigError, InputError
from l2i_pipeline.core.shards import iter_output_samples, list_output_shards
from l2i_pipeline.core.storage import open_store
from training.data.index import build_index
from training.data.stream import L2IData


@pytest.fixture(scope="module")
def matting_dir(tmp_path_factory):
    from l2i_pipeline.cli import main

    root = tmp_path_factory.mktemp("l2i_matting")
    write_raw_shard(root / "raw", "00000", make_rows(5))
    rc = main(["synthesize", "--runner", "local", "--input", str(root / "raw"), "--output", str(root / "l2i"),
               "--set", "resolution=64", "--set", "layers.dilate_kernel=3", "--set", "layers.alpha=matting"])
    assert rc == 0
    return root / "l2i"


def _data(path, *overrides):
    cfg = tiny_config(*overrides)
    store = open_store(str(path))
    return L2IData(store, build_index(str(path), store, cfg.data), cfg.data, cfg.train.batch_size, cfg.train.seed)


def _png(data):
    return np.asarray(Image.open(io.BytesIO(data)))


def test_rgba_trains_on_clean_colours_and_alpha(matting_dir):
    members = dict(m for n in list_output_shards(matting_dir) for m in iter_output_samples(matting_dir, n))
    for fg in ("rgb", "rgba"):
        batch = _data(matting_dir, f"data.fg={fg}", "data.flip=false").validation_batch(4)
        for i, key in enumerate(batch["key"]):
            m = members[key]
            want_fg = _png(m["fg_rgba.png"])[..., :3] if fg == "rgba" else _png(m["fg.png"])
            want_mask = _png(m["alpha.png"]) if fg == "rgba" else _png(m["mask.png"])
            got_fg = np.rint((batch["fg"][i].numpy().transpose(1, 2, 0) + 1) * 127.5)
            assert np.abs(got_fg - want_fg).max() <= 1
            assert np.abs(batch["mask"][i, 0].numpy() * 255 - want_mask).max() < 0.01
    rgb = _data(matting_dir, "data.flip=false").validation_batch(4)
    rgba = _data(matting_dir, "data.fg=rgba", "data.flip=false").validation_batch(4)
    assert not np.array_equal(rgb["mask"].numpy(), rgba["mask"].numpy())  # soft alpha, not the saliency map
    assert np.array_equal(rgb["bg"].numpy(), rgba["bg"].numpy()) and np.array_equal(rgb["image"], rgba["image"])


def test_rgba_on_shards_without_matting_is_a_clear_error(l2i_dir):
    data = _data(l2i_dir, "data.fg=rgba")
    with pytest.raises(InputError, match="layers.alpha=matting.*has no fg_rgba.png or alpha.png"):
        next(data.batches(0, 1, {}))


def test_unknown_fg_is_refused():
    with pytest.raises(ConfigError, match="data.fg must be rgb or rgba"):
        tiny_config("data.fg=rgbx")
