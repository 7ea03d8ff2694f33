"""The CaT2I-AE losses: L = L_img(F, B, I) + lambda * L_mask (paper eq. 3, 4 and Appendix III).

L_mask = l1(m, m^) + 2 l_comp + 3 l_lap. l_comp compares C = mF + (1-m)B with C^ = m^F + (1-m^)B (ground-truth
F and B, so only the mask is judged) on the [0, 1] scale of the mask and of the matting losses it comes from
(images enter the other losses in [-1, 1]; there C - C^ would be doubled, an effective weight of 4, not 2).
l_lap = sum_j 2^(j-1) ||phi_j(m^) - phi_j(m)||_1 over the first three levels of a Laplacian pyramid (ours:
5x5 Gaussian, reflect padding, j = 1 finest). L_img is Latent Diffusion's LPIPSWithDiscriminator per image
layer: rec = |x - x^| + LPIPS, nll = rec / exp(logvar) + logvar (logvar fixed at 0 unless
loss.learn_logvar, as in LDM's reference, so nll = rec), a hinge PatchGAN whose generator term is weighted
adaptively. Every term is summed over pixels (and channels) and divided by the batch size, as in LDM.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_W = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def per_sample_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over everything but the batch, mean over the batch."""
    return x.sum() / x.shape[0]


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return per_sample_sum((pred - target).abs())


def composition_loss(mask_pred: torch.Tensor, mask: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor,
                     eps: float = 1e-6) -> torch.Tensor:
    """sum_i sqrt((C_i - C^_i)^2 + eps^2), C = mF + (1-m)B, C^ = m^F + (1-m^)B (Appendix III, eq. 7), i over
    pixels and colour channels; `fg`, `bg` in [-1, 1] are taken to [0, 1] first (the paper's scale, as m's)."""
    fg, bg = (fg + 1) / 2, (bg + 1) / 2
    c = mask * fg + (1 - mask) * bg
    c_hat = mask_pred * fg + (1 - mask_pred) * bg
    return per_sample_sum(torch.sqrt((c - c_hat) ** 2 + eps**2))


def _gauss(x: torch.Tensor) -> torch.Tensor:
    k = torch.outer(_W, _W).to(x.device, x.dtype)[None, None].repeat(x.shape[1], 1, 1, 1)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=x.shape[1])


def _upsample(x: torch.Tensor) -> torch.Tensor:
    """Zero insertion then 4 x the Gaussian: the inverse of blur + decimate for smooth signals."""
    up = torch.zeros(x.shape[0], x.shape[1], x.shape[2] * 2, x.shape[3] * 2, device=x.device, dtype=x.dtype)
    up[:, :, ::2, ::2] = x * 4
    return _gauss(up)


def laplacian_pyramid(x: torch.Tensor, levels: int = 3) -> list[torch.Tensor]:
    """[phi_1 (finest), ..., phi_levels]; each is the current level minus its blurred, decimated, re-expanded self."""
    out = []
    current = x
    for _ in range(levels):
        down = _gauss(current)[:, :, ::2, ::2]
        out.append(current - _upsample(down)[:, :, : current.shape[2], : current.shape[3]])
        current = down
    return out


def laplacian_loss(mask_pred: torch.Tensor, mask: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """sum_j 2^(j-1) ||phi_j(m^) - phi_j(m)||_1 (Appendix III, eq. 8)."""
    total = mask_pred.new_zeros(())
    for j, (a, b) in enumerate(zip(laplacian_pyramid(mask_pred, levels), laplacian_pyramid(mask, levels)), start=1):
        total = total + 2 ** (j - 1) * l1_loss(a, b)
    return total


def mask_loss(mask_pred: torch.Tensor, mask: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor,
              w_l1: float = 1.0, w_comp: float = 2.0, w_lap: float = 3.0, eps: float = 1e-6,
              levels: int = 3) -> dict[str, torch.Tensor]:
    """The three mask terms and their weighted sum L_mask (eq. 4)."""
    terms = {"mask_l1": l1_loss(mask_pred, mask), "mask_comp": composition_loss(mask_pred, mask, fg, bg, eps),
             "mask_lap": laplacian_loss(mask_pred, mask, levels)}
    terms["mask"] = w_l1 * terms["mask_l1"] + w_comp * terms["mask_comp"] + w_lap * terms["mask_lap"]
    return terms


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def adaptive_weight(nll: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    disc_weight: float = 0.5) -> torch.Tensor:
    """||d nll / d w|| / (||d g / d w|| + 1e-4), clamped to [0, 1e4], times disc_weight; w the last layer."""
    nll_grads = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    weight = torch.norm(nll_grads) / (torch.norm(g_grads) + 1e-4)
    return torch.clamp(weight, 0.0, 1e4).detach() * disc_weight


def reconstruction_nll(x: torch.Tensor, x_hat: torch.Tensor, logvar: torch.Tensor, lpips_model: torch.nn.Module,
                       l1_weight: float = 1.0, lpips_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """LDM's nll for one image layer: (|x - x^| + LPIPS) / exp(logvar) + logvar, summed per sample."""
    rec = l1_weight * (x - x_hat).abs()
    p = lpips_model(x.contiguous(), x_hat.contiguous()) if lpips_weight > 0 else rec.new_zeros(x.shape[0], 1, 1, 1)
    rec = rec + lpips_weight * p
    nll = rec / torch.exp(logvar) + logvar
    return {"nll": per_sample_sum(nll), "rec": per_sample_sum(rec), "l1": per_sample_sum((x - x_hat).abs()),
            "lpips": p.mean()}
