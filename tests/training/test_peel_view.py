"""data.view=peel (issue 26): every layer of peeled shards is a training sample (B_{k-1} as the image, F_k,
m_k, B_k); the paper's view reads layer 1 only; shards without a depth are a clear error for the peel view;
a run started before data.view existed resumes."""
from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest
from rawshards import write_scene_shard
from trainshards import tiny_config

from l2i_pipeline.core.errors import ConfigError, InputError
from l2i_pipeline.core.shards import iter_output_samples, list_output_shards
from l2i_pipeline.core.storage import open_store
from l2i_pipeline.engine.synthesize import synthesize
from stages.config import load_config
from training.data.index import build_index, parse_item
from training.data.stream import L2IData, decode_sample


@pytest.fixture(scope="module")
def peeled(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("peel")
    write_scene_shard(root / "raw", size=128)
    synthesize(root / "raw", root / "l2i", load_config(None, [
        "resolution=128", "saliency.backend=classical", "layers.count=3", "layers.dilate_kernel=5"]), runner="local")
    return root / "l2i"


def _depths(out: Path) -> dict[str, int]:
    return {k: json.loads(m["json"])["depth"] for n in list_output_shards(out) for k, m in iter_output_samples(out, n)}


def _data(path, *sets):
    cfg = tiny_config("data.test_fraction=0", *sets)
    store = open_store(str(path))
    return L2IData(store, build_index(str(path), store, cfg.data), cfg.data, cfg.train.batch_size, cfg.train.seed)


def test_the_peel_view_yields_every_layer_and_the_paper_view_layer_one(peeled):
    depths = _depths(peeled)
    assert sum(depths.values()) > len(depths)  # some samples were peeled
    peel, paper = _data(peeled, "data.view=peel"), _data(peeled)
    assert peel.index.n_train == sum(depths.values()) and paper.index.n_train == len(depths)
    items = sorted(k for s in peel.index.shards for k in s.train_keys)
    assert items == sorted(f"{k}#l{i}" if i > 1 else k for k, d in depths.items() for i in range(1, d + 1))
    seen = {key for batch in islice(peel.batches(0, 1, {}), 6) for key in batch["key"]}
    assert any(parse_item(k)[1] == 2 for k in seen)


def test_layer_k_is_cut_from_the_background_before_it(peeled):
    name = list_output_shards(peeled)[0]
    key, members = next((k, m) for k, m in iter_output_samples(peeled, name) if json.loads(m["json"])["depth"] >= 2)
    s = decode_sample(members, 128, False, layer=2)
    bg1 = cv2.imdecode(np.frombuffer(members["bg.png"], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.abs(s["image"] - (bg1.transpose(2, 0, 1) / 127.5 - 1.0)).max() < 1e-6  # I_2 = B_1
    m2 = cv2.imdecode(np.frombuffer(members["l2.mask.png"], np.uint8), cv2.IMREAD_GRAYSCALE) / 255.0
    assert np.allclose(s["mask"][0], m2)
    on = m2 > 0.1
    assert np.allclose(s["fg"][:, on], s["image"][:, on])  # F_2 = B_1 where m_2 > t


def test_the_peel_view_of_shards_without_depth_is_a_clear_error(l2i_dir):
    with pytest.raises(InputError, match=r"data.view=peel needs shards synthesized with layers.count > 1"):
        _data(l2i_dir, "data.view=peel")
    assert _data(l2i_dir).index.n_train == 11  # the paper's view reads them as before


def test_an_unknown_view_is_refused():
    with pytest.raises(ConfigError, match="data.view must be paper or peel"):
        tiny_config("data.view=layers")


def test_a_run_dir_made_before_data_view_existed_resumes(tmp_path):
    from training.base.rundir import prepare_run_dir

    cfg = tiny_config()
    prepare_run_dir(tmp_path, cfg, "ae", "data")
    run = json.loads((tmp_path / "run.json").read_text())
    del run["config"]["data"]["view"]
    (tmp_path / "run.json").write_text(json.dumps(run))
    prepare_run_dir(tmp_path, cfg, "ae", "data")  # not refused: the missing key had today's default
    with pytest.raises(ConfigError, match="data.view"):
        prepare_run_dir(tmp_path, tiny_config("data.view=peel"), "ae", "data")
