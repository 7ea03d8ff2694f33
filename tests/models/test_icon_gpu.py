"""ICON on CUDA: fp32 and autocast fp16/bf16 with channels_last stay close to the official CPU outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from l2i_pipeline.models.icon import IconSaliency, preprocess
from stages.config import SaliencyConfig
from stages.saliency_icon import IconBackend

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

# max abs logit difference to the official fp32 CPU output (cuDNN's TF32 convolutions included in fp32)
TOLS = {"fp32": 2e-2, "fp16": 5e-2, "bf16": 2e-1}


@pytest.mark.parametrize("precision", list(TOLS))
@pytest.mark.parametrize("variant", ["ICON-R", "ICON-S"])
def test_end_to_end_on_cuda(variant, precision, icon_ref):
    meta, ref = icon_ref.meta(variant), icon_ref.arrays(variant)
    sal = IconSaliency(variant, icon_ref.official_weights(variant), device="cuda", batch_size=8, precision=precision)
    weight = sal.model.dfa4.oriConv.weight
    assert weight.is_cuda and weight.is_contiguous(memory_format=torch.channels_last)
    images = [icon_ref.random_rgb(c["image_seed"], *c["shape"]) for c in meta["e2e"]]
    logits = sal.predict_logits(images)
    for i, (case, got) in enumerate(zip(meta["e2e"], logits)):
        s = case["stride"]
        diff = np.abs(got[::s, ::s] - ref[f"e2e{i}_logits"]).max()
        print(f"{variant} cuda {precision} {case['shape']} max abs logit diff {diff:.2e}")
        assert np.isfinite(got).all() and diff <= TOLS[precision]
    maps = sal.predict(images)
    assert all(m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1 for m in maps)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_pvt_forward_under_autocast(precision, icon_ref):
    meta, ref = icon_ref.meta("ICON-P"), icon_ref.arrays("ICON-P")
    sal = IconSaliency("ICON-P", icon_ref.official_weights("ICON-P"), device="cuda", precision=precision)
    size = meta["net"]["size"]
    x = torch.from_numpy(preprocess(icon_ref.random_rgb(meta["net"]["image_seed"], size, size), size))[None]
    x = x.cuda().contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), sal._autocast():
        got = sal.model(x).float()[0, 0].cpu().numpy()
    diff = np.abs(got - ref["net_logits"]).max()
    print(f"ICON-P cuda {precision} max abs logit diff {diff:.2e}")
    assert np.isfinite(got).all() and diff <= TOLS[precision]


def test_backend_auto_device_picks_cuda_fp16(tmp_path, icon_ref):
    path = tmp_path / "ICON-Res.weight"
    torch.save(icon_ref.official_weights("ICON-R"), path)
    backend = IconBackend(SaliencyConfig(backend="icon", variant="ICON-R", weights=str(path), device="auto"))
    backend.check()
    backend.setup()
    assert backend.model.device.type == "cuda" and backend.model.precision == "fp16"
    (m,) = backend.predict([icon_ref.random_rgb(3, 31, 47)])
    assert m.shape == (31, 47) and m.dtype == np.float32 and np.isfinite(m).all()
