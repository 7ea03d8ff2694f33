"""`l2i synthesize` with layers.alpha=matting: the paper's members unchanged, alpha members beside them."""
import io
import json

import numpy as np
import webdataset as wds
from PIL import Image

from l2i_pipeline.core.shards import list_output_shards
from l2i_pipeline.engine.synthesize import synthesize
from l2i_pipeline.formats.names import MEMBERS
from stages.config import LayersConfig, load_config
from stages.matting import trimap

CFG = ["resolution=96", "output_shard_size=4", "layers.dilate_kernel=5", "saliency.backend=classical"]
BAND = LayersConfig.band


def _samples(out):
    return {s["__key__"]: s for s in wds.WebDataset([str(out / f"{n}.tar") for n in list_output_shards(out)],
                                                    shardshuffle=False)}


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_matting_adds_members_and_leaves_the_paper_members_byte_identical(raw_dir, tmp_path):
    synthesize(raw_dir, tmp_path / "binary", load_config(None, CFG), runner="local")  # the default: binary
    synthesize(raw_dir, tmp_path / "matting", load_config(None, CFG + ["layers.alpha=matting"]), runner="local")
    binary, soft = _samples(tmp_path / "binary"), _samples(tmp_path / "matting")
    assert binary.keys() == soft.keys() and len(binary) == 11
    for key, b in binary.items():
        s = soft[key]
        assert set(b) - {"__key__", "__url__", "__local_path__"} == set(MEMBERS)
        assert set(s) - set(b) == {"alpha.png", "fg_rgba.png"}
        for m in MEMBERS[:-1]:  # jpg, fg, mask, inpaint_mask, bg, txt: the same bytes
            assert s[m] == b[m], (key, m)
        mb, ms = json.loads(b["json"]), json.loads(s["json"])
        assert ms["layers"].pop("alpha") == "matting" and ms["layers"].pop("band") == BAND
        ms["layers"].pop("matting_scale")
        assert ms == mb
        alpha, rgba = _decode(s["alpha.png"]), _decode(s["fg_rgba.png"])
        assert alpha.shape == (96, 96) and rgba.shape == (96, 96, 4)
        assert np.array_equal(rgba[..., 3], alpha)
        img, mask = _decode(s["jpg"]), _decode(s["mask.png"]) / 255.0
        sure = trimap(mask, 0.1, BAND) == 1.0
        assert (alpha[sure] == 255).all() and np.array_equal(rgba[..., :3][sure], img[sure])  # F' = I there
        assert (alpha[trimap(mask, 0.1, BAND) == 0.0] == 0).all()


def test_matting_shards_are_deterministic_for_resume(raw_dir, tmp_path):
    cfg = load_config(None, CFG + ["layers.alpha=matting"])
    synthesize(raw_dir, tmp_path / "a", cfg, runner="local")
    synthesize(raw_dir, tmp_path / "b", cfg, runner="local")
    tars = sorted(p.name for p in (tmp_path / "a").glob("*.tar"))
    assert tars and all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in tars)
