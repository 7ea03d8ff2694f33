"""Backend protocols are typing.Protocol classes (stages/protocols.py), checked where a backend is loaded."""
from __future__ import annotations

import pytest

from stages import registry
from stages.config import ConfigError, load_config
from stages.protocols import InpaintBackend, SaliencyBackend, missing_members


class NoDescribe:
    uses_gpu = False

    def check(self):
        """-"""

    def setup(self):
        """-"""

    def inpaint(self, images, masks, keys):
        return images


class IntGpu(NoDescribe):
    uses_gpu = 1

    def describe(self):
        return {}


def test_the_missing_member_is_named():
    with pytest.raises(ConfigError, match=r"inpaint.backend '.*:NoDescribe' does not implement the inpaint backend "
                                          r"protocol \(stages/protocols.py\): missing describe$"):
        registry.inpaint_backend(load_config(None, [f"inpaint.backend={__name__}:NoDescribe"]))
    assert missing_members(IntGpu, InpaintBackend) == ["uses_gpu (a bool)"]
    assert missing_members(IntGpu, SaliencyBackend) == ["predict", "uses_gpu (a bool)"]


@pytest.mark.parametrize("kind, name", [("saliency", "classical"), ("saliency", "u2netp"), ("inpaint", "telea")])
def test_the_built_in_backends_implement_their_protocol(kind, name):
    table = {"saliency": registry.SALIENCY, "inpaint": registry.INPAINT}[kind]
    assert registry._load(table, kind, name).__name__ == table[name].split(":")[1]
