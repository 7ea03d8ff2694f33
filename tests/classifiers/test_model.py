import numpy as np
import pytest
import torch

from classifiers.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from classifiers.features import prepare, to_tensor
from classifiers.model import B0_URL, QualityClassifier, build, load_backbone_state


def test_missing_backbone_weights_names_file_and_url(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_backbone_state(tmp_path / "efficientnet-b0-355c32eb.pth")
    assert "efficientnet-b0-355c32eb.pth" in str(e.value) and B0_URL in str(e.value)


def _snapshot(model):
    return {k: v.clone() for k, v in model.backbone.state_dict().items()}


@pytest.mark.parametrize("encoding", ["pair", "stem4"])
def test_only_the_head_trains_and_bn_statistics_stay(backbone_file, encoding):
    model = build("mask", encoding, 64, backbone_file)
    before = _snapshot(model)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert [p for p in model.parameters() if p.requires_grad] == model.head_parameters()
    bias_before = model.fc.bias.clone()  # (random-backbone features are tiny: the bias moves visibly)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model.train()  # the backbone must stay in eval mode: BatchNorm running stats may not move
    assert model.training and not model.backbone.training
    x = torch.rand(2, 4, 64, 64) * 3  # off-distribution input: a BN in train mode would shift its stats
    for _ in range(2):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), torch.tensor([1.0, 0]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = _snapshot(model)
    assert any("running_mean" in k for k in after)
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert not torch.equal(bias_before, model.fc.bias)


def test_backbone_is_the_file_and_stem4_mask_filter_is_the_mean_rgb_filter(backbone_file):
    state = load_backbone_state(backbone_file)
    pair = build("mask", "pair", 64, backbone_file)
    for k, v in pair.backbone.state_dict().items():
        assert torch.equal(v, state[k]), k
    stem = build("mask", "stem4", 64, backbone_file).backbone._conv_stem.weight
    w = state["_conv_stem.weight"]
    assert stem.shape[1] == 4
    torch.testing.assert_close(stem[:, :3], w * 0.75)
    torch.testing.assert_close(stem[:, 3], w.mean(1) * 0.75)
    assert pair.feature_dim == 2560 and build("inpaint", None, 64, backbone_file).feature_dim == 1280


def test_checkpoint_round_trip(tmp_path, backbone_file):
    model = build("mask", "stem4", 64, backbone_file)
    torch.nn.init.normal_(model.fc.weight)
    meta = {"threshold": 0.7, "metrics": {"test": {"roc_auc": 0.9}}, "label_counts": {"train": {"good": 3, "bad": 2}}}
    st, js = save_checkpoint(model, meta, tmp_path / "m")
    assert (st, js) == checkpoint_paths(tmp_path / "m.json") and st.suffix == ".safetensors"
    loaded, meta2 = load_checkpoint(st)
    assert meta2["threshold"] == 0.7 and meta2["task"] == "mask" and meta2["encoding"] == "stem4"
    assert meta2["label_counts"] == meta["label_counts"] and meta2["image_size"] == 64
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rng = np.random.default_rng(0)
    x = np.stack([prepare("mask", 64, image=rng.integers(0, 255, (80, 80, 3), np.uint8),
                          mask=rng.random((80, 80)).astype(np.float32)) for _ in range(2)])
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(to_tensor(x, torch.device("cpu"))),
                                   loaded(to_tensor(x, torch.device("cpu"))))


def test_wrong_channels_and_encodings_are_clear_errors():
    with pytest.raises(ValueError, match="encodings"):
        QualityClassifier("inpaint", "pair", 64)
    with pytest.raises(ValueError, match="channels"):
        QualityClassifier("inpaint", None, 64).features(torch.zeros(1, 4, 64, 64))


@pytest.mark.parametrize("content", [b"not weights at all\n", "state_dict_of_another_model"])
def test_backbone_file_that_is_not_b0_weights_is_one_clear_error(tmp_path, content):
    """Issue 17: a text file or another model's weights is a user mistake, named, not a traceback."""
    from l2i_pipeline.core.errors import InputError

    path = tmp_path / "efficientnet-b0-355c32eb.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(InputError, match="--backbone-weights .* (not a PyTorch weights file|not an EfficientNet-b0)"):
        load_backbone_state(path)
