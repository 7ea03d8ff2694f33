"""Run a batch, then one by one: the model stages' one rule for a batch that raises.

A batch call that raises is retried one item at a time, so one bad input (or a batch too big for the
device) costs that item only: each item that still fails is rejected with `<stage>:error:<Exception>`
and gets None. A batch of one is not retried (the single call was the batch call).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from l2i_pipeline.core.sample import Sample

log = logging.getLogger(__name__)

R = TypeVar("R")


def batch_then_singles(stage_name: str, todo: list[Sample],
                       fn: Callable[[list[Sample]], list[R]]) -> list[R | None]:
    """fn(todo), one result per sample; if it raises, fn([s]) for each s, None (and s rejected) where that
    raises too."""
    try:
        return list(fn(todo))
    except Exception as e:  # noqa: BLE001 - a failed batch is retried one sample at a time
        if len(todo) == 1:
            todo[0].reject(f"{stage_name}:error:{type(e).__name__}")
            return [None]
        log.warning("%s batch of %d failed (%s); retrying one by one", stage_name, len(todo), e)
    out: list[R | None] = []
    for s in todo:
        try:
            out.append(fn([s])[0])
        except Exception as e1:  # noqa: BLE001 - this sample only
            s.reject(f"{stage_name}:error:{type(e1).__name__}")
            out.append(None)
    return out
