"""DDIM + CFG: reproducible per seed, batch == one by one, guidance 1 == conditional, x0 recovered."""
import pytest
import torch

from training.ldm.ddim import SD_SCHEDULE, ddim_sample, ddim_scheduler
from training.ldm.unet import build_unet


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return build_unet("tiny", 4, 32, 8).eval()


def _ctx(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 77, 32, generator=g), torch.randn(1, 77, 32, generator=g)


def test_same_seed_same_latents_and_batch_equals_one_by_one(unet):
    cond, uncond = _ctx(3)
    batch = ddim_sample(unet, SD_SCHEDULE, cond, uncond, [5, 6, 7], (4, 8, 8), steps=4, guidance=7.5)
    again = ddim_sample(unet, SD_SCHEDULE, cond, uncond, [5, 6, 7], (4, 8, 8), steps=4, guidance=7.5)
    assert torch.equal(batch, again)
    for i, seed in enumerate([5, 6, 7]):
        one = ddim_sample(unet, SD_SCHEDULE, cond[i:i + 1], uncond, [seed], (4, 8, 8), steps=4, guidance=7.5)
        torch.testing.assert_close(one[0], batch[i], atol=1e-4, rtol=0)  # float rounding of batched kernels


def test_guidance_one_is_the_conditional_prediction_only(unet):
    cond, uncond = _ctx(1)
    calls = []

    def spy(x, t, encoder_hidden_states):
        calls.append(x.shape[0])
        return unet(x, t, encoder_hidden_states=encoder_hidden_states)

    got = ddim_sample(spy, SD_SCHEDULE, cond, uncond, [3], (4, 8, 8), steps=3, guidance=1.0)
    assert calls == [1, 1, 1]
    ref = ddim_sample(unet, SD_SCHEDULE, cond, torch.full_like(uncond, 99.0), [3], (4, 8, 8), steps=3,
                      guidance=1.0)
    assert torch.equal(got, ref)
    cfg = ddim_sample(unet, SD_SCHEDULE, cond, uncond, [3], (4, 8, 8), steps=3, guidance=3.0)
    assert not torch.allclose(cfg, got)


def test_oracle_noise_prediction_recovers_x0():
    config = dict(SD_SCHEDULE, set_alpha_to_one=True)
    alphas = ddim_scheduler(config).alphas_cumprod
    x0 = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(9))

    def oracle(x, t, encoder_hidden_states):
        a = alphas[int(t)]
        return (x - a.sqrt() * x0[: x.shape[0]]) / (1 - a).sqrt()

    cond = torch.zeros(2, 77, 32)
    out = ddim_sample(oracle, config, cond, None, [1, 2], (4, 8, 8), steps=10, guidance=1.0)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


def test_bad_steps_and_guidance_refused(unet):
    cond, uncond = _ctx(1)
    with pytest.raises(ValueError, match="steps"):
        ddim_sample(unet, SD_SCHEDULE, cond, uncond, [0], (4, 8, 8), steps=0)
    with pytest.raises(ValueError, match="guidance"):
        ddim_sample(unet, SD_SCHEDULE, cond, uncond, [0], (4, 8, 8), guidance=0.5)
