"""The pipeline config: the ground floor's keys (core/config.py: run keys, decode, saliency, layers) plus
the sections the stages and backends declare beside their code, composed here: `inpaint` (the stage's
keys, stages/inpaint.py; telea's, stages/inpaint_telea.py; sd2's, stages/sd2_settings.py) and `score`
(stages/score_settings.py). Defaults, then a YAML file, then `--set a.b=v` (core/typedconfig.py).

It lives in stages/, above core, because core may not import the stages (docs/ARCHITECTURE.md). The
sections stay flat (`inpaint.steps`) and keep their key order, so run.json and resume checks see the same
dict as before the split.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l2i_pipeline.core import config as core
from l2i_pipeline.core import provenance
from l2i_pipeline.core.config import (  # noqa: F401 - the ground floor's sections, re-exported for callers
    DEVICE,
    ConfigError,
    DecodeConfig,
    LayersConfig,
    SaliencyConfig,
    check_device,
    check_ranges,
    span,
)
from l2i_pipeline.core.typedconfig import apply_dict, load_typed
from stages import inpaint as inpaint_stage
from stages import inpaint_telea, score_settings, sd2_settings
from stages.inpaint import InpaintBackendChoice, InpaintSettings
from stages.inpaint_telea import TeleaSettings
from stages.score_settings import ScoreConfig
from stages.sd2_settings import COMPILE_MODES, DTYPES, Sd2Settings  # noqa: F401 - re-exported

__all__ = ["Config", "ConfigError", "InpaintConfig", "ScoreConfig", "load_config", "config_from_dict",
           "config_help", "RANGES", "RUNTIME_KEYS"]


@dataclass
class InpaintConfig(InpaintSettings, Sd2Settings, TeleaSettings, InpaintBackendChoice):
    """One flat section: dataclass fields run from the last base to the first, so the keys read
    backend, telea's, sd2's, then the stage's own (the order run.json has always recorded)."""


@dataclass
class Config(core.Config):
    inpaint: InpaintConfig = field(default_factory=InpaintConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def validate(self) -> Config:
        """core's checks, then the composed sections' ranges, devices and names; ConfigError naming the key."""
        super().validate()
        check_ranges(self, STAGE_RANGES)
        for key in ("inpaint.device", "score.device"):
            check_device(self, key)
        sd2_settings.validate(self.inpaint)
        return self


def _prefixed(section: str, ranges: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    return {f"{section}.{k}": v for k, v in ranges.items()}


STAGE_RANGES: dict[str, tuple[float, float]] = {
    **_prefixed("inpaint", inpaint_telea.RANGES), **_prefixed("inpaint", sd2_settings.RANGES),
    **_prefixed("inpaint", inpaint_stage.RANGES), **score_settings.RANGES,
}
RANGES: dict[str, tuple[float, float]] = {**core.RANGES, **STAGE_RANGES}  # every numeric key, for --help
# the leaf keys a resumed `l2i synthesize` may change (speed only): the ground floor's and the backends'
RUNTIME_KEYS: set[str] = provenance.RUNTIME_KEYS | sd2_settings.RUNTIME_KEYS


def config_help() -> str:
    """Every config key with its default and allowed values, for --help."""
    defaults = Config()
    lines = ["config keys (--set KEY=VALUE; default, allowed):"]
    for key, (lo, hi) in RANGES.items():
        lines.append(f"  {key} = {defaults.get(key)!r}  ({span(lo, hi)})")
    for key in ("saliency.device", "inpaint.device", "score.device"):
        lines.append(f"  {key} = {defaults.get(key)!r}  (auto, cpu, cuda, cuda:N)")
    lines += [f"  {line}" for line in sd2_settings.HELP]
    lines.append("  saliency.backend: u2netp | classical | icon; inpaint.backend: telea | sd2")
    lines.append(f"  layers.alpha = 'binary'  ({', '.join(core.ALPHAS)})")
    lines.append(f"  layers.split = 'components'  ({', '.join(core.SPLITS)})")
    lines.append("  layers.min_area < layers.max_area")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file, then `--set` overrides; validated."""
    return load_typed(Config(), path, overrides).validate()


def config_from_dict(data: dict[str, Any]) -> Config:
    cfg = Config()
    apply_dict(cfg, data)
    return cfg.validate()
