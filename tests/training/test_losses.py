"""The CaT2I-AE losses against hand-computed values (docs/TRAINING.md, Appendix III)."""
from __future__ import annotations

import pytest
import torch

from l2i_pipeline.core.errors import NotFound
from training.ae import losses
from training.ae.lpips_loader import load_lpips
from training.base.config import LPIPSConfig

H = W = 16


def const(v: float, c: int = 1, n: int = 2) -> torch.Tensor:
    return torch.full((n, c, H, W), float(v))


def test_mask_terms_on_constant_layers():
    """White F, black B (+1, -1 on the models' [-1, 1] scale), m=0.5, m^=0.25: on l_comp's [0, 1] scale (the
    paper's, as the mask's) C=0.5, C^=0.25 everywhere, not 0 and -0.5; constants have no Laplacian detail."""
    fg, bg, m, m_hat = const(1, 3), const(-1, 3), const(0.5), const(0.25)
    t = losses.mask_loss(m_hat, m, fg, bg)
    assert t["mask_l1"].item() == pytest.approx(0.25 * H * W)  # per sample: summed over pixels
    assert t["mask_comp"].item() == pytest.approx(3 * H * W * (0.25**2 + 1e-12) ** 0.5)
    assert t["mask_lap"].item() == pytest.approx(0.0, abs=1e-4)
    assert t["mask"].item() == pytest.approx(t["mask_l1"].item() + 2 * t["mask_comp"].item() + 3 * t["mask_lap"].item())


def test_composition_uses_ground_truth_layers_and_eps():
    """Equal masks leave only eps per channel and pixel; where F == B the mask does not matter."""
    fg = bg = torch.rand(1, 3, H, W)
    t = losses.composition_loss(torch.rand(1, 1, H, W), torch.rand(1, 1, H, W), fg, bg, eps=1e-6)
    assert t.item() == pytest.approx(3 * H * W * 1e-6, rel=1e-3)


def test_constant_offset_moves_l1_not_laplacian():
    m = torch.rand(2, 1, H, W)
    assert losses.laplacian_loss(m + 0.1, m).item() == pytest.approx(0.0, abs=1e-3)
    assert losses.l1_loss(m + 0.1, m).item() == pytest.approx(0.1 * H * W, rel=1e-5)


def test_impulse_through_the_pyramid():
    """phi_1 of a unit impulse at an even pixel: 1 - 4 * (sum over even offsets of w^2)^2 with w=[1,4,6,4,1]/16.

    sum_{a in -2,0,2} w(a)^2 = 38/256, so the expanded low-pass at the impulse is 4 (38/256)^2 and phi_1 there is
    1 - 0.088134765625. The coarser levels carry the rest, and the pyramid's l1 weights are 1, 2, 4.
    """
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 16, 16] = 1.0
    pyr = losses.laplacian_pyramid(x, 3)
    assert [p.shape[-1] for p in pyr] == [32, 16, 8]
    assert pyr[0][0, 0, 16, 16].item() == pytest.approx(1 - 4 * (38 / 256) ** 2, abs=1e-6)
    expected = sum(2**j * p.abs().sum().item() for j, p in enumerate(pyr))
    assert losses.laplacian_loss(x, torch.zeros_like(x)).item() == pytest.approx(expected, rel=1e-6)


def test_hinge_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # real: relu(1-2)=0, relu(1-0.5)=0.5 -> mean 0.25; fake: relu(1-2)=0, relu(1+0)=1 -> mean 0.5
    assert losses.hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.5))


def test_adaptive_weight_on_a_toy_layer():
    """w = ||d nll/dW|| / (||d g/dW|| + 1e-4) * disc_weight, clamped at 1e4."""
    weight = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))
    x = torch.tensor([1.0, 1.0])
    y = weight @ x  # 7
    nll, g = 2 * y.sum(), 0.5 * y.sum()  # grads wrt W: [2, 2] (norm 2.828) and [0.5, 0.5] (norm 0.707)
    w = losses.adaptive_weight(nll, g, weight, disc_weight=0.5)
    assert w.item() == pytest.approx(0.5 * (8**0.5) / (0.5**0.5 + 1e-4), rel=1e-6)
    assert not w.requires_grad
    zero_g = 0.0 * y.sum()
    assert losses.adaptive_weight(2 * y.sum(), zero_g, weight, 1.0).item() == pytest.approx(1e4)


def test_lpips_gives_the_images_a_gradient():
    model = load_lpips(LPIPSConfig(pnet_rand=True))
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    x_hat = torch.zeros(2, 3, 32, 32, requires_grad=True)
    r = losses.reconstruction_nll(x, x_hat, torch.zeros(()), model, l1_weight=0.0, lpips_weight=1.0)
    r["nll"].backward()
    assert r["lpips"].item() > 0
    assert x_hat.grad is not None and x_hat.grad.abs().sum().item() > 0


def test_lpips_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(NotFound, match="vgg16-397923af.pth.*download.pytorch.org"):
        load_lpips(LPIPSConfig(vgg_weights=str(tmp_path / "nope.pth")))
    with pytest.raises(NotFound, match="lpips.vgg_weights"):
        load_lpips(LPIPSConfig())


def test_lpips_trunk_loads_from_a_torchvision_file(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["D"])
    path = tmp_path / "vgg16-397923af.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    model = load_lpips(LPIPSConfig(vgg_weights=str(path)))
    assert torch.equal(model.net.slice3._modules["10"].weight, features[10].weight)
