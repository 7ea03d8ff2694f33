"""A saliency backend for the GPU-on-demand test: it "uses a GPU" (so the runner puts it in the device actors
and plans their GPU ask), records where Ray placed it (node id, the GPU ids Ray assigned, CUDA_VISIBLE_DEVICES)
in each sample's json, and predicts with the classical backend so the rest of the pipeline runs as usual."""
from __future__ import annotations

import os

from stages.saliency_classical import ClassicalSaliency


class ProbeSaliency(ClassicalSaliency):
    uses_gpu = True

    def setup(self) -> None:
        import ray

        super().setup()
        self.where = {"node": ray.get_runtime_context().get_node_id(),
                      "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                      "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def describe(self) -> dict:
        return {**super().describe(), "probe": self.where}
