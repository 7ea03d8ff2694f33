"""The batch-then-one-by-one rule (stages/fallback.py), written once and used by every model stage."""
from __future__ import annotations

import numpy as np

from l2i_pipeline.core.sample import Sample
from stages.config import load_config
from stages.fallback import batch_then_singles
from stages.inpaint import InpaintStage


def _samples(n: int) -> list[Sample]:
    return [Sample(f"k{i}", "u", image=np.zeros((8, 8, 3), np.uint8)) for i in range(n)]


def test_a_failed_batch_runs_one_by_one_and_rejects_only_the_bad_item():
    calls = []

    def fn(xs):
        calls.append([s.key for s in xs])
        if any(s.key == "k1" for s in xs):
            raise ValueError("bad")
        return [s.key.upper() for s in xs]

    todo = _samples(3)
    assert batch_then_singles("st", todo, fn) == ["K0", None, "K2"]
    assert calls == [["k0", "k1", "k2"], ["k0"], ["k1"], ["k2"]]
    assert [s.reason for s in todo] == [None, "st:error:ValueError", None]


def test_a_batch_of_one_is_not_retried():
    calls = []

    def fn(xs):
        calls.append(len(xs))
        raise MemoryError

    todo = _samples(1)
    assert batch_then_singles("st", todo, fn) == [None]
    assert calls == [1] and todo[0].reason == "st:error:MemoryError"


class _FailsOnK1:
    uses_gpu = False

    def __init__(self, cfg, seed=0):
        pass

    def check(self):
        """Nothing to load."""

    def setup(self):
        """Nothing to load."""

    def inpaint(self, images, masks, keys):
        if "k1" in keys:
            raise RuntimeError("boom")
        return [np.full_like(im, 7) for im in images]

    def describe(self):
        return {"backend": "fails-on-k1"}


def test_the_inpaint_stage_uses_it():
    cfg = load_config(None, [f"inpaint.backend={__name__}:_FailsOnK1"])
    samples = _samples(3)
    for s in samples:
        s.inpaint_mask = np.full((8, 8), 255, np.uint8)
    out = InpaintStage(cfg).run(samples)
    assert [s.ok for s in out] == [True, False, True]
    assert out[1].reason == "inpaint:error:RuntimeError" and int(out[0].bg[0, 0, 0]) == 7
