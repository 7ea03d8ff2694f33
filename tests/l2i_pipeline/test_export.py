"""`l2i export` (issue 26): .psd / .ora / PNG per sample, read back; layers k >= 2; bad input."""
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from psd_tools import PSDImage
from rawshards import make_rows, write_raw_shard

from l2i_pipeline.cli import main
from l2i_pipeline.commands.export import export, sample_stack
from l2i_pipeline.core.commit import write_output_shard
from l2i_pipeline.core.layerfiles import Layer, composite, psd_bytes
from l2i_pipeline.core.sample import Sample
from l2i_pipeline.core.shards import iter_output_samples, list_output_shards
from l2i_pipeline.engine.synthesize import synthesize
from stages.config import load_config

CFG = ["resolution=96", "output_shard_size=8", "layers.dilate_kernel=5", "saliency.backend=classical"]
NAMES = ["original", "layer 1 mask", "layer 1 inpaint mask", "layer 1", "background"]


@pytest.fixture(scope="module")
def l2i_dirs(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    write_raw_shard(d / "raw", "00000", make_rows(4))
    out = {}
    for alpha in ("binary", "matting"):
        out[alpha] = d / alpha
        synthesize(d / "raw", out[alpha], load_config(None, CFG + [f"layers.alpha={alpha}"]), runner="local")
    return out


def _members(l2i_dir):
    return dict(m for n in list_output_shards(l2i_dir) for m in iter_output_samples(l2i_dir, n))


def _png(data):
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize("alpha", ["binary", "matting"])
def test_psd_opens_with_named_layers_and_the_composite(l2i_dirs, tmp_path, alpha):
    r = export(str(l2i_dirs[alpha]), ["psd"], tmp_path)
    samples = _members(l2i_dirs[alpha])
    assert r["exported"] == len(samples) == 4 and r["skipped"] == {}
    for key, members in samples.items():
        psd = PSDImage.open(tmp_path / f"{key}.psd")
        assert [layer.name for layer in reversed(list(psd))] == NAMES  # psd lists bottom-up
        assert [layer.visible for layer in reversed(list(psd))] == [False, False, False, True, True]
        image, bg = _png(members["jpg"]), _png(members["bg.png"])
        ours = composite(sample_stack(members))
        theirs = np.asarray(psd.composite())[..., :3]
        assert np.abs(theirs.astype(int) - ours).max() <= 1  # psd-tools renders what we composite
        assert np.abs(np.asarray(psd.topil())[..., :3].astype(int) - ours).max() <= 1  # stored merged image
        if alpha == "binary":
            cut = _png(members["mask.png"]) / 255 > 0.1
            outside = _png(members["inpaint_mask.png"]) == 0
            assert np.array_equal(ours[cut], image[cut]) and np.array_equal(ours[outside], image[outside])
            assert np.array_equal(ours[~cut], bg[~cut])
        else:
            rgba = _png(members["fg_rgba.png"])
            a = rgba[..., 3:4] / 255
            want = np.rint(a * rgba[..., :3] + (1 - a) * bg)
            assert np.abs(theirs.astype(int) - want).max() <= 1
            opaque = rgba[..., 3] == 255
            assert np.abs(theirs[opaque].astype(int) - image[opaque]).max() <= 1  # I where alpha is 1


def test_ora_and_png_hold_the_same_stack(l2i_dirs, tmp_path):
    export(str(l2i_dirs["matting"]), ["ora", "png"], tmp_path)
    for key, members in _members(l2i_dirs["matting"]).items():
        want = composite(sample_stack(members))
        with zipfile.ZipFile(tmp_path / f"{key}.ora") as z:
            assert z.namelist()[0] == "mimetype" and z.read("mimetype") == b"image/openraster"
            xml = z.read("stack.xml").decode()
            assert [n in xml for n in NAMES] == [True] * 5 and xml.count('visibility="hidden"') == 3
            assert np.array_equal(_png(z.read("mergedimage.png")), want)
        files = sorted(p.name for p in (tmp_path / key).iterdir())
        assert files == ["00_original.png", "01_layer_1_mask.png", "02_layer_1_inpaint_mask.png", "03_layer_1.png",
                         "04_background.png", "composite.png"]
        assert np.array_equal(_png((tmp_path / key / "03_layer_1.png").read_bytes()), _png(members["fg_rgba.png"]))
        assert np.array_equal(_png((tmp_path / key / "composite.png").read_bytes()), want)
    again = tmp_path / "again"
    export(str(l2i_dirs["matting"]), ["ora"], again)
    for p in again.glob("*.ora"):
        assert p.read_bytes() == (tmp_path / p.name).read_bytes()  # deterministic


def test_deeper_layers_are_exported_in_order_over_the_deepest_background(l2i_dirs):
    key, members = next(iter(_members(l2i_dirs["binary"]).items()))
    rng = np.random.default_rng(0)
    deeper = dict(members)
    for name in ("fg.png", "mask.png", "inpaint_mask.png", "bg.png"):  # a fake second peel
        arr = _png(members[name])
        deeper[f"l2.{name}"] = _png_bytes(rng.permutation(arr.reshape(-1, *arr.shape[2:])).reshape(arr.shape))
    deeper["json"] = json.dumps({**json.loads(members["json"]), "depth": 2}).encode()  # as peeling writes it
    stack = sample_stack(deeper)
    assert [layer.name for layer in stack] == NAMES[:4] + ["layer 2 mask", "layer 2 inpaint mask", "layer 2",
                                                           "background"]
    assert np.array_equal(stack[-1].pixels, _png(deeper["l2.bg.png"]))
    psd = PSDImage.open(io.BytesIO(psd_bytes(stack)))
    assert len(list(psd)) == 8 and np.abs(np.asarray(psd.composite())[..., :3].astype(int)
                                          - composite(stack)).max() <= 1


def _png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_a_damaged_sample_is_skipped_with_its_reason(l2i_dirs, tmp_path, capsys):
    samples = _members(l2i_dirs["binary"])
    bad = tmp_path / "bad"
    rows = []
    for i, (key, members) in enumerate(sorted(samples.items())):
        s = Sample(key, "00000_0000", meta={"key": key})
        s.members = {**members, "bg.png": b"not a png"} if i == 0 else members
        rows.append(s)
    write_output_shard(bad, "00000_0000", rows)
    code = main(["export", "--input", str(bad), "--format", "psd", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 1 and "exported  3 samples" in out and "bg.png does not decode" in out
    assert len(list((tmp_path / "o").glob("*.psd"))) == 3


@pytest.mark.parametrize("args, message", [
    (["--format", "tiff"], "allowed psd, ora, png"),
    (["--format", "psd", "--limit", "0"], "--limit 0"),
    (["--format", "psd", "--input", "/nonexistent/l2i"], "not found"),
    (["--format", "psd", "--out", "s3://bucket/x"], "must be a local path"),
])
def test_bad_export_arguments_are_one_line_errors(l2i_dirs, tmp_path, capsys, args, message):
    base = {"--input": str(l2i_dirs["binary"]), "--out": str(tmp_path / "o")}
    given = dict(zip(args[::2], args[1::2]))
    argv = ["export"] + [x for k, v in {**base, **given}.items() for x in (k, v)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_raw_shards_are_refused(tmp_path, capsys):
    write_raw_shard(tmp_path / "raw", "00000", make_rows(2))
    assert main(["export", "--input", str(tmp_path / "raw"), "--format", "psd", "--out", str(tmp_path / "o")]) == 2
    assert "raw shards" in capsys.readouterr().err


def test_layer_rejects_mixed_sizes():
    with pytest.raises(ValueError, match="expected uint8 4x4"):
        composite([Layer("a", np.zeros((4, 4, 3), np.uint8)), Layer("b", np.zeros((5, 4, 3), np.uint8))])
