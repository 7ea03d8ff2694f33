"""A stage is set up once, by the executor, through its public `start()` (no one sets its private state)."""
from __future__ import annotations

import numpy as np

from l2i_pipeline.core.sample import Sample
from l2i_pipeline.core.storage import open_store
from l2i_pipeline.engine.runner import DeviceActor
from stages.config import load_config
from stages.inpaint import InpaintStage


class CountsSetups:
    uses_gpu = True
    setups = 0

    def __init__(self, cfg, seed=0):
        pass

    def check(self):
        """Nothing to load."""

    def setup(self):
        type(self).setups += 1

    def inpaint(self, images, masks, keys):
        return [np.full_like(im, 9) for im in images]

    def describe(self):
        return {"backend": "counts-setups"}


def _cfg():
    return load_config(None, [f"inpaint.backend={__name__}:CountsSetups"])


def test_start_sets_up_once_and_run_does_not_again():
    CountsSetups.setups = 0
    stage = InpaintStage(_cfg())
    assert not stage.ready
    stage.start()
    stage.start()
    s = Sample("k", "u", image=np.zeros((4, 4, 3), np.uint8))
    s.inpaint_mask = np.full((4, 4), 255, np.uint8)
    stage.run([s])
    assert stage.ready and CountsSetups.setups == 1 and stage.describe == {"backend": "counts-setups"}


def test_the_device_actor_starts_its_stages(tmp_path):
    CountsSetups.setups = 0
    actor = DeviceActor(_cfg(), (InpaintStage,), open_store(tmp_path))
    assert [st.ready for st in actor.stages] == [True] and CountsSetups.setups == 1
    actor.stages[0].run([])
    assert CountsSetups.setups == 1
