"""Weight files the metrics need, where each is published, and the rule for absent ones.

No machine here reaches a model hub. A weight the user did not pass skips its metric (named with the file it
needs, so `make demo` runs offline); a weight the user passed that is not there is an error naming every such
file at once, before any work.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from l2i_pipeline.core.errors import NotFound

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_WHERE = ("the Inception-v3 torchscript clean-fid uses, published by NVIDIA at "
                   "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt")
CLIP_NAME = "CLIP ViT-L/14"
CLIP_WHERE = ("a transformers CLIPModel dir (config.json, model.safetensors, tokenizer and preprocessor files), "
              "published by OpenAI at https://huggingface.co/openai/clip-vit-large-patch14")
CLIP_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def icon_where() -> str:
    from l2i_pipeline.models.icon import WEIGHTS_WHERE

    return WEIGHTS_WHERE


@dataclass
class Need:
    """One metric's weight: what the flag points at and why it is missing (None when usable)."""

    metric: str
    flag: str
    path: str | None
    file: str
    where: str
    problem: str | None = None

    @property
    def present(self) -> bool:
        return self.path is not None and self.problem is None

    def skipped_line(self) -> str:
        return f"{self.metric}: skipped, needs {self.file} ({self.flag}); {self.where}"


def _check_file(path: str | None) -> str | None:
    if path is None:
        return None
    return None if Path(path).expanduser().is_file() else f"{path} not found"


def _check_clip_dir(path: str | None) -> str | None:
    if path is None:
        return None
    d = Path(path).expanduser()
    if not d.is_dir():
        return f"{d} not found (expected a directory)"
    missing = [] if (d / "config.json").is_file() else ["config.json"]
    if not any((d / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")):
        missing.append("preprocessor_config.json")
    if not any((d / f).is_file() for f in CLIP_WEIGHTS):
        missing.append(" or ".join(CLIP_WEIGHTS))
    if not any((d / f).is_file() for f in ("tokenizer.json", "vocab.json")):
        missing.append("tokenizer.json or vocab.json")
    return f"{d} lacks {', '.join(missing)}" if missing else None


def needs(inception: str | None, clip: str | None, icon_weights: str | None) -> dict[str, Need]:
    return {
        "fid": Need("FID", "--inception FILE", inception, INCEPTION_FILE, INCEPTION_WHERE, _check_file(inception)),
        "clip": Need("CLIP score", "--clip DIR", clip, CLIP_NAME, CLIP_WHERE, _check_clip_dir(clip)),
        "icon": Need("IOU (ICON)", "--icon-weights FILE", icon_weights, "ICON-Res.weight (ICON-R)", icon_where(),
                     _check_file(icon_weights)),
    }


def require_given(found: dict[str, Need]) -> None:
    """One error naming every weight that was passed but is not usable, and where each is published."""
    bad = [n for n in found.values() if n.path is not None and n.problem is not None]
    if bad:
        raise NotFound("; ".join(f"{n.flag.split()[0]} {n.problem}: {n.metric} needs {n.file}, {n.where}"
                                 for n in bad))


def weight_rows(inception: str | None, clip: str | None) -> list[tuple[str, str, str, bool]]:
    """Rows for `l2i models check`: (role, path, status, ok); unset is fine, set-but-absent is not."""
    rows = []
    for key, label in (("fid", f"eval --inception ({INCEPTION_FILE})"), ("clip", f"eval --clip ({CLIP_NAME})")):
        n = needs(inception, clip, None)[key]
        if n.path is None:
            rows.append((label, "-", f"not configured ({n.metric} skipped by l2i eval); {n.where}", True))
        elif n.problem:
            rows.append((label, n.path, f"MISSING: {n.problem}; {n.where}", False))
        else:
            rows.append((label, n.path, "present", True))
    return rows
