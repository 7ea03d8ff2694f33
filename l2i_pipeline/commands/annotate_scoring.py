"""The classifiers' scores of the labeling pool, for `l2i annotate serve|rank` (active labeling).

`annotations` and `classifiers` are siblings in the layers and may not import each other; this command-layer
module, which may import both, runs classifier checkpoints on the pool's samples (read by byte offset, as the
app shows them); `commands/annotate.py` hands `score_pool` to `annotations.active`.
"""
from __future__ import annotations

import logging

import numpy as np

from annotations.pool import SampleFiles

log = logging.getLogger(__name__)


def score_pool(checkpoints: dict[str, str], files: list[SampleFiles], batch_size: int = 64
               ) -> dict[str, dict[str, float]]:
    """{task: {key: P(good)}} of the given samples; a sample that cannot be decoded is left out."""
    from classifiers.features import TASK_MEMBERS, batched, decode_members, prepare
    from classifiers.scorer import Scorer

    scorer = Scorer(checkpoints.get("mask"), checkpoints.get("inpaint"), "auto", batch_size)
    scorer.setup()
    out: dict[str, dict[str, float]] = {t: {} for t in scorer.tasks}
    for task in scorer.tasks:
        for chunk in batched(files, batch_size):
            keys, inputs = [], []
            for f in chunk:
                try:
                    arrays = decode_members({m: f.read(m) for m in TASK_MEMBERS[task]}, task)
                    inputs.append(prepare(task, scorer.sizes[task], **arrays))
                    keys.append(f.key)
                except (OSError, ValueError, KeyError) as e:
                    log.warning("sample %s cannot be scored for %s: %s", f.key, task, e)
            if keys:
                out[task].update(zip(keys, map(float, scorer.score(task, np.stack(inputs)))))
    return out

