"""A simulated accelerator: saliency and inpaint backends that take a fixed time per batch, without a GPU.

They declare `uses_gpu = True`, so the runners schedule them exactly like ICON and SD2 (actor pools,
`num_gpus`), touch every pixel like the real backends do on the way in and out, and hold one
machine-wide lock while "computing" (a sleep): saliency and inpaint share one simulated GPU, across
actor processes, as the real models share one device. Each batch appends its busy interval to a log
file, so the benchmark can compute the GPU's busy fraction after the run.

Settings come from the environment (Ray workers inherit it from the driver that starts the cluster):
    L2I_SIM_GPU='{"saliency_s": 0.01, "inpaint_s": 0.2, "batch_s": 0.0, "dir": "/tmp/l2i_sim"}'
seconds per image for each model, plus a fixed cost per batch; `dir` holds the lock and the busy log.
Use as `--set saliency.backend=sim_backends:SimSaliency --set inpaint.backend=sim_backends:SimInpainter`
with bench/ on PYTHONPATH (Ray workers inherit it from the driver that starts the cluster).
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

import numpy as np

ENV = "L2I_SIM_GPU"
DEFAULTS = {"saliency_s": 0.01, "inpaint_s": 0.2, "batch_s": 0.0, "dir": "/tmp/l2i_sim_gpu"}  # ~one H100


def settings() -> dict:
    return {**DEFAULTS, **json.loads(os.environ.get(ENV, "{}"))}


def gpu_seconds(kind: str, n: int, s: dict | None = None) -> float:
    s = s or settings()
    return s[f"{kind}_s"] * n + s["batch_s"]


class SimGpu:
    """One simulated device: a file lock held for the batch's time, and a log of busy intervals."""

    def __init__(self, kind: str):
        self.kind = kind
        self.s = settings()
        Path(self.s["dir"]).mkdir(parents=True, exist_ok=True)

    def run(self, n: int) -> None:
        seconds = gpu_seconds(self.kind, n, self.s)
        with open(Path(self.s["dir"]) / "gpu.lock", "w") as lock:  # a new open file per call: threads exclude too
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                t0 = time.time()
                time.sleep(seconds)
                t1 = time.time()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        with open(Path(self.s["dir"]) / "busy.log", "a") as log:  # one short append per batch: atomic
            log.write(f"{self.kind} {t0:.6f} {t1:.6f} {n} {os.getpid()}\n")


class SimSaliency:
    uses_gpu = True
    thread_safe = True  # only the "device" time holds the lock; the pixel work before and after does not

    def __init__(self, cfg, seed: int = 0):
        self.cfg = cfg

    def check(self) -> None:
        """Nothing to load."""

    def setup(self) -> None:
        self.gpu = SimGpu("saliency")

    def predict(self, images: list[np.ndarray], seeds: list[int] | None = None) -> list[np.ndarray]:
        # like ICON: to float, normalise, "run", then a full-size float mask comes back
        inputs = [(im.astype(np.float32) / 255.0 - 0.45) / 0.225 for im in images]
        self.gpu.run(len(images))
        out = []
        for im, x in zip(images, inputs):
            # what differs from the border's colour, so the no-object gate sees an object where the mask ends
            border = np.concatenate([im[0], im[-1], im[:, 0], im[:, -1]]).astype(np.float32)
            blob = np.linalg.norm(im.astype(np.float32) - np.median(border, axis=0), axis=2) > 60
            out.append(np.clip(blob * (0.8 + 0.05 * np.tanh(x.mean(2))), 0, 1).astype(np.float32))
        return out

    def describe(self) -> dict:
        return {"backend": "sim", "seconds_per_image": self.gpu.s["saliency_s"]}


class SimInpainter:
    uses_gpu = True
    thread_safe = True

    def __init__(self, cfg, seed: int = 0):
        self.cfg = cfg

    def check(self) -> None:
        """Nothing to load."""

    def setup(self) -> None:
        self.gpu = SimGpu("inpaint")

    def inpaint(self, images: list[np.ndarray], masks: list[np.ndarray], keys: list[str]) -> list[np.ndarray]:
        # like SD2: image and mask to [-1, 1] floats in, a uint8 image out
        inputs = [(im.astype(np.float32) / 127.5 - 1.0) * (m[..., None] < 128) for im, m in zip(images, masks)]
        self.gpu.run(len(images))
        return [np.clip((x * 0.5 + 1.0) * 127.5, 0, 255).astype(np.uint8) for x in inputs]

    def describe(self) -> dict:
        return {"backend": "sim", "seconds_per_image": self.gpu.s["inpaint_s"]}


def busy_intervals(directory: str | Path) -> list[tuple[str, float, float, int]]:
    path = Path(directory) / "busy.log"
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(r[0], float(r[1]), float(r[2]), int(r[3])) for r in rows]


def busy_fraction(intervals: list[tuple[str, float, float, int]], start: float, end: float) -> float:
    """Union of busy intervals within [start, end] over its length (the lock makes them disjoint anyway)."""
    spans = sorted((max(a, start), min(b, end)) for _, a, b, _ in intervals if b > start and a < end)
    busy, cur_a, cur_b = 0.0, None, None
    for a, b in spans:
        if cur_b is None or a > cur_b:
            busy += (cur_b - cur_a) if cur_b is not None else 0.0
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    busy += (cur_b - cur_a) if cur_b is not None else 0.0
    return busy / max(end - start, 1e-9)
