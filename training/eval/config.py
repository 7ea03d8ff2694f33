"""`l2i eval`'s settings (`--set KEY=VALUE` keys), checked before any work."""
from __future__ import annotations

from dataclasses import dataclass

from l2i_pipeline.core.errors import ConfigError


@dataclass
class EvalConfig:
    samples: str | None = None  # `l2i sample` output dir
    real: str | None = None  # L2I shards (their held-out split is LL2I-E)
    la: str | None = None  # raw img2dataset shards (LA = those not in L2I)
    out: str | None = None  # EVAL_DIR
    inception: str | None = None  # inception-2015-12-05.pt
    clip: str | None = None  # CLIP ViT-L/14 dir
    icon_weights: str | None = None  # ICON .weight file; without it the classical saliency backend
    icon_variant: str = "ICON-R"
    human_masks: str | None = None  # dir of <id>.png
    ref_cache: str | None = None  # reference statistics dir (default OUT/ref_stats); share it across runs
    name: str | None = None  # run name in the tables (default: the sample dir's name)
    max_real: int = 20_000  # images per reference set (the paper: 20K)
    max_samples: int | None = None
    test_fraction: float = 0.01  # must match the training run's data.test_fraction
    split_seed: int = 0  # ... and data.split_seed
    batch_size: int = 32
    device: str = "auto"  # auto | cpu | cuda[:N]
    workers: int = 4  # decode/resize threads
    runner: str = "local"  # local | ray (Ray Data actor pool; GPU actors when the cluster has GPUs)
    actors: int = 1  # ray: actor pool size
    ray_address: str | None = None  # ray: cluster to join (default $RAY_ADDRESS, else a private local Ray)
    strict: bool = False  # fail instead of skipping a metric whose weights were not given

    def validate(self) -> EvalConfig:
        if not self.out:
            raise ConfigError("--out EVAL_DIR is required")
        for ok, msg in ((self.max_real >= 1, "max_real must be >= 1"),
                        (self.batch_size >= 1, "batch_size must be >= 1"),
                        (0.0 < self.test_fraction < 1.0, "test_fraction must be in (0, 1)"),
                        (self.max_samples is None or self.max_samples >= 1, "max_samples must be >= 1"),
                        (self.runner in ("local", "ray"), f"runner {self.runner!r}: choose local or ray"),
                        (self.actors >= 1, "actors must be >= 1")):
            if not ok:
                raise ConfigError(msg)
        return self
