"""Checkpoints: safetensors + JSON round trip of modules and optimiser state, keep-N, partial dirs ignored."""
from __future__ import annotations

import torch

from training.base import checkpoint


def _model_and_adam():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
    return model, opt


def test_round_trip_is_exact_and_only_the_last_are_kept(tmp_path):
    model, opt = _model_and_adam()
    for step in (1, 2, 3):
        checkpoint.save_checkpoint(tmp_path, step, {"model": model}, {"ae": opt}, {"positions": {"0": {}}}, keep=2)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [2, 3]
    other, other_opt = _model_and_adam()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1)
    other_opt.state.clear()
    state = checkpoint.load_checkpoint(checkpoint.latest_checkpoint(tmp_path), {"model": other}, {"ae": other_opt})
    assert state["step"] == 3 and state["positions"] == {"0": {}}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    a, b = opt.state_dict(), other_opt.state_dict()
    assert [(g["lr"], tuple(g["betas"]), g["params"]) for g in a["param_groups"]] == \
        [(g["lr"], tuple(g["betas"]), g["params"]) for g in b["param_groups"]]
    for i, s in a["state"].items():
        assert all(torch.equal(s[k], b["state"][i][k]) for k in s)


def test_partial_checkpoints_are_ignored_and_removed(tmp_path):
    model, opt = _model_and_adam()
    checkpoint.save_checkpoint(tmp_path, 1, {"model": model}, {"ae": opt}, {}, keep=3)
    (tmp_path / "checkpoints" / ".tmp_step_0000002_123").mkdir()  # a kill during the write of step 2
    (tmp_path / "checkpoints" / "step_0000003").mkdir()  # no state.json: not complete
    assert checkpoint.latest_checkpoint(tmp_path).name == "step_0000001"
    checkpoint.remove_partial(tmp_path)
    assert not (tmp_path / "checkpoints" / ".tmp_step_0000002_123").exists()
