"""The AE task's GAN bookkeeping: the pitfalls of public AE-GAN scripts (docs/TRAINING.md) are absent."""
from __future__ import annotations

import pytest
import torch
from trainshards import tiny_config

from training.ae.task import AETask
from training.base.config import describe_lr, effective_lr, lr_summary
from training.base.loop import Context


def _batch(n: int = 2, size: int = 64) -> dict:
    g = torch.Generator().manual_seed(1)
    fg, bg = torch.rand(n, 3, size, size, generator=g) * 2 - 1, torch.rand(n, 3, size, size, generator=g) * 2 - 1
    m = (torch.rand(n, 1, size, size, generator=g) > 0.5).float()
    return {"fg": fg, "bg": bg, "mask": m, "image": m * fg + (1 - m) * bg, "key": ["a", "b"][:n]}


def _task(*overrides: str) -> AETask:
    task = AETask(tiny_config("loss.disc_start=5", *overrides))
    task.setup(Context(torch.device("cpu")))
    return task


def _params(opt):
    return [p for g in opt.param_groups for p in g["params"]]


def test_no_gan_before_disc_start():
    task = _task()
    out = task.step(_batch(), step=4)
    assert set(out.losses) == {"ae"}  # the discriminator is neither used nor stepped
    assert not any(k.startswith(("g_", "d_weight")) for k in out.logs)
    out = task.step(_batch(), step=5)
    assert set(out.losses) == {"ae", "disc"} and out.logs["d_weight_fg"].item() > 0


def test_disc_loss_writes_no_gradient_into_the_autoencoder():
    task = _task()
    opts = task.optimizers()
    out = task.step(_batch(), step=5)
    out.losses["disc"].backward(inputs=_params(opts["disc"]), retain_graph=True)
    assert all(p.grad is None for p in task.model.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.disc.parameters())
    disc_grads = [p.grad.clone() for p in task.disc.parameters()]
    out.losses["ae"].backward(inputs=_params(opts["ae"]))
    assert all(torch.equal(a, p.grad) for a, p in zip(disc_grads, task.disc.parameters()))  # nor the reverse
    assert task.model.ae.head_fg.last_layer.grad.abs().sum() > 0


def test_disc_sees_detached_reconstructions():
    """Backpropagating the disc loss through everything still leaves the AE without gradients."""
    task = _task()
    out = task.step(_batch(), step=5)
    out.losses["disc"].backward()
    assert all(p.grad is None for p in task.model.parameters())


def test_both_optimisers_step_after_disc_start(l2i_dir, tmp_path):
    from training.base.loop import train
    from training.jobs.runner import _data

    cfg = tiny_config("loss.disc_start=1", "train.steps=2", "ckpt.every=100", "val.every=100")
    task = AETask(cfg)
    data = _data(cfg, str(l2i_dir))
    task.setup(Context(torch.device("cpu")))
    before_disc = [p.detach().clone() for p in task.disc.parameters()]
    before_ae = [p.detach().clone() for p in task.model.parameters()]
    task.setup = lambda ctx: None  # keep the models built above
    train(task, data, cfg, tmp_path / "run", Context(torch.device("cpu")))
    assert any(not torch.equal(a, p) for a, p in zip(before_disc, task.disc.parameters()))
    assert any(not torch.equal(a, p) for a, p in zip(before_ae, task.model.parameters()))


def test_disc_sees_real_and_fake_in_two_forwards():
    """As LDM's reference: one forward of the real images, one of the reconstructions (no mixed BatchNorm)."""
    task = _task()
    batch = _batch()
    calls = []
    disc_w = task.disc_w

    def recording(x):
        calls.append(x.detach().clone())
        return disc_w(x)

    task.disc_w = recording
    task.step(batch, step=5)
    reals = torch.cat([batch["fg"], batch["bg"], batch["image"]])
    assert len(calls) == 2 and calls[0].shape[0] == calls[1].shape[0] == reals.shape[0]
    assert torch.equal(calls[0], reals) and not torch.equal(calls[1], reals)


def test_logvar_is_not_trained_by_default():
    task = _task()
    assert not task.model.logvar.requires_grad
    assert all(p is not task.model.logvar for p in _params(task.optimizers()["ae"]))
    learned = _task("loss.learn_logvar=true")
    assert any(p is learned.model.logvar for p in _params(learned.optimizers()["ae"]))


def test_lr_is_scaled_by_batch_world_size_and_accumulation():
    task = _task("train.lr=1e-5", "train.batch_size=3", "train.grad_accum=2")
    assert task.optimizers()["ae"].param_groups[0]["lr"] == pytest.approx(1e-5 * 3 * 2)
    cfg = tiny_config("train.lr=1e-5", "train.batch_size=3", "train.grad_accum=2")
    assert effective_lr(cfg.train, 4) == pytest.approx(1e-5 * 3 * 4 * 2)  # 4 GPUs (Ray workers)
    assert "= base 1e-05 x batch 3 x 4 worker(s) x accumulation 2" in describe_lr(lr_summary(cfg, 4))
    plain = _task("train.lr=1e-5", "train.batch_size=3", "train.scale_lr=false")
    assert plain.optimizers()["disc"].param_groups[0]["lr"] == pytest.approx(1e-5)
