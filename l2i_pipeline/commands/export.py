"""`l2i export`: L2I samples as layered files (.psd, .ora, per-layer PNGs), one file per sample.

Each sample's stack, top first: the original image (hidden), then per layer k = 1..K its mask and
inpainting mask (hidden) and its foreground with alpha, then the deepest background B_K. Layer 1 is the
paper's members (`fg.png`, `mask.png`, `inpaint_mask.png`, `bg.png`), layer k >= 2 the `l{k}.`-prefixed
ones (issue 26). A layer's alpha is `fg_rgba.png` when the shards were made with `layers.alpha=matting`,
else the paper's cut (mask > layers.threshold) over fg.png, so the composite is I inside the cut and B
outside it. A sample that cannot be exported is skipped with its reason (printed; exit status 1); the
others are still written. Files: l2i_pipeline/core/layerfiles.py.
"""
from __future__ import annotations

import argparse
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from l2i_pipeline.commands.args import add_storage_options_arg
from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.layerfiles import FORMATS, Layer, layered_files
from l2i_pipeline.core.outputs import check_l2i_dir, local_output
from l2i_pipeline.core.shards import iter_output_samples, list_output_shards
from l2i_pipeline.core.storage import open_store
from l2i_pipeline.formats import mask8
from l2i_pipeline.formats.decode import read_layers
from l2i_pipeline.formats.names import JPG, JSON


def _image(members: dict[str, bytes], name: str, mode: str) -> np.ndarray:
    if name not in members:
        raise ValueError(f"missing member {name}")
    try:
        img = Image.open(io.BytesIO(members[name]))
        img.load()
    except Exception as e:  # noqa: BLE001 - PIL raises several types for a damaged file
        raise ValueError(f"member {name} is not a readable image: {e}") from None
    return np.asarray(img.convert(mode))


def sample_stack(members: dict[str, bytes]) -> list[Layer]:
    """The layered stack of one sample (module docstring); ValueError naming what is missing or damaged."""
    meta = json.loads(members[JSON]) if JSON in members else {}
    threshold = float((meta.get("layers") or {}).get("threshold", mask8.CUT))
    try:
        layers = read_layers(members)  # every layer, any depth (formats/decode.py)
    except KeyError as e:
        raise ValueError(str(e).strip("'\"")) from None
    stack = [Layer("original", _image(members, JPG, "RGB"), visible=False)]
    for k, layer in enumerate(layers, start=1):
        if layer.fg_rgba is not None:
            fg = layer.fg_rgba
        else:  # the paper's binary cut: F = I where m > t
            fg = np.dstack([layer.fg, mask8.binary(layer.mask > threshold)])
        stack += [Layer(f"layer {k} mask", mask8.encode(layer.mask), visible=False),
                  Layer(f"layer {k} inpaint mask", layer.inpaint_mask, visible=False),
                  Layer(f"layer {k}", fg)]
    stack.append(Layer("background", layers[-1].bg))
    sizes = {layer.pixels.shape[:2] for layer in stack}
    if len(sizes) != 1:
        raise ValueError(f"members of different sizes {sorted(sizes)}")
    return stack


def _write(out: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)


def export(inp: str, formats: list[str], out: Path, limit: int | None = None,
           storage_options: str | dict | None = None) -> dict:
    """Write one file per sample and format under `out`; {"exported", "skipped": {reason: n}, "files"}."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(f"--format {','.join(formats) or '(empty)'}: allowed {', '.join(FORMATS)} (a comma list)")
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: must be >= 1")
    store = open_store(inp, storage_options)
    check_l2i_dir(store, "l2i export")
    names = list_output_shards(store)
    if not names:
        raise NotFound(f"no complete shards in {store.url}")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a directory")
    done, files, skipped = 0, 0, Counter()
    for name in names:
        for key, members in iter_output_samples(store, name):
            if limit is not None and done >= limit:
                return {"exported": done, "skipped": dict(skipped), "files": files}
            try:
                stack = sample_stack(members)
            except ValueError as e:
                skipped[f"{name}/{key}: {e}"] += 1
                continue
            for fmt in formats:
                written = layered_files(stack, fmt, key)
                _write(out, written)
                files += len(written)
            done += 1
    return {"exported": done, "skipped": dict(skipped), "files": files}


def cmd_export(args: argparse.Namespace) -> int:
    out = local_output(args.out, "`l2i export` --out")
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    r = export(args.input, formats, out, args.limit, args.storage_options)
    print(f"\nl2i export\n  exported  {r['exported']} samples ({', '.join(formats)}): {r['files']} files in {out}")
    for reason, n in r["skipped"].items():
        print(f"  skipped   {n}  {reason}")
    return 1 if r["skipped"] else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="L2I samples as layered .psd / .ora / PNG files, one per sample",
                       description=__doc__)
    p.add_argument("--input", required=True, help="an L2I(U) shard directory or URL (synthesize/filter output)")
    p.add_argument("--format", required=True, help=f"comma list of {', '.join(FORMATS)}")
    p.add_argument("--out", required=True, help="local output dir: OUT/KEY.psd, OUT/KEY.ora, OUT/KEY/NN_layer.png")
    p.add_argument("--limit", type=int, default=None, help="export at most this many samples (shard order)")
    add_storage_options_arg(p)
    p.set_defaults(func=cmd_export)
