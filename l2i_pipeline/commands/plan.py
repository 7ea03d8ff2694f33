"""`l2i plan`: what a run of a given size costs, from measured per-stage rates and real shard sizes.

Rates come from a committed figures file (`bench/figures.json`: each number with its source), so the
plan is as good as the benchmarks behind it; `--rate`, `--yield` and `--shards/--raw` replace any of them.
Nothing here runs a model: it is arithmetic a data engineer would otherwise do in a spreadsheet. With
`--shards` of peeled output (layers.count > 1) the measured depth sets the inpainting and saliency passes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from l2i_pipeline.commands.args import add_storage_options_arg
from l2i_pipeline.commands.plan_requests import format_requests
from l2i_pipeline.core.errors import ConfigError, InputError, NotFound

STAGE_ORDER = ["download", "decode", "saliency", "layers", "inpaint", "encode", "score"]
PRICE_KEYS = {"gpu_hour", "cpu_hour", "storage_gb_month", "egress_gb"}


def default_figures_path() -> Path:
    """$L2I_FIGURES (set in the container image), else bench/figures.json of this source tree."""
    env = os.environ.get("L2I_FIGURES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "bench" / "figures.json"


def load_figures(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"figures file not found: {p} (pass --figures FILE; the repository has bench/figures.json)")
    try:
        figs = json.loads(p.read_text())
    except ValueError as e:
        raise ConfigError(f"{p}: not valid JSON: {e}") from None
    for key in ("rates", "yields", "storage"):
        if not isinstance(figs.get(key), dict):
            raise ConfigError(f"{p}: missing the {key!r} object")
    return figs


def _pairs(items: list[str], what: str) -> dict[str, float]:
    """['inpaint=6.1', ...] -> {'inpaint': 6.1}; a bad item is one clear error."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--{what} {item!r}: expected NAME=NUMBER") from None
        if out[key.strip()] < 0:
            raise ConfigError(f"--{what} {item!r}: must not be negative")
    return out


def measure_shards(url: str, storage_options: dict | str | None = None) -> dict[str, float]:
    """Bytes and rows of the complete shards under `url` (L2I or raw img2dataset), from one listing.

    Only shards with a `_stats.json` marker count; every file of such a shard counts toward its size
    (tar, parquet, scores, marker), so the figure is what a bucket bills for.
    """
    from l2i_pipeline.core.storage import open_store
    from l2i_pipeline.formats.names import MARKER

    store = open_store(url, storage_options)
    files = store.list()
    names = [n[: -len(MARKER)] for n in files if n.endswith(MARKER)]
    if not names:
        raise InputError(f"no complete shards (NAME_stats.json) under {url}")
    total = rows = ok = 0
    for name in names:
        stats = json.loads(store.get(f"{name}{MARKER}"))
        total += sum(size for f, size in files.items() if f == name or f.startswith((f"{name}.", f"{name}_")))
        rows += int(stats.get("count", 0))
        ok += int(stats["status"].get("ok", 0)) if "status" in stats else int(stats.get("successes", 0))
    if not ok:
        raise InputError(f"no ok samples in the {len(names)} complete shard(s) under {url}")
    return {"shards": len(names), "rows": rows, "ok": ok, "bytes": total,
            "bytes_per_ok": total / ok, "bytes_per_row": total / max(rows, 1)}


def measure_depth(url: str, max_shards: int = 20, storage_options: dict | str | None = None) -> dict[str, Any] | None:
    """Peeling (layers.count > 1, issue 26) measured on the ok samples of up to `max_shards` complete shards
    under `url`, from their parquet indexes: the depth histogram and the model passes per synthesized sample.
    None when no sample records a depth (layers.count=1 or older shards)."""
    from l2i_pipeline.core.shards import list_output_shards, read_output_index
    from l2i_pipeline.core.storage import open_store

    store = open_store(url, storage_options)  # every read below goes through --storage-options
    names = list_output_shards(store)[:max_shards]
    depths: dict[int, int] = {}
    saliency = inpaint = 0
    try:
        rows = read_output_index(store, names).to_pylist() if names else []
    except (OSError, ValueError, KeyError):  # not L2I indexes (raw shards, foreign files): no depth to measure
        return None
    for row in rows:
        try:
            meta = json.loads(row.get("meta") or "{}") if row["status"] == "ok" else {}
        except ValueError:
            continue
        if not isinstance(meta.get("depth"), int):
            continue
        depths[meta["depth"]] = depths.get(meta["depth"], 0) + 1
        peel = [e for e in meta.get("peel") or [] if isinstance(e, dict)]
        saliency += 1 + sum(e.get("source") == "saliency" or str(e.get("stopped", "")).startswith(
            ("saliency:", "layers:")) for e in peel)  # a stop there came after a saliency pass
        inpaint += meta["depth"] + sum(str(e.get("stopped", "")).startswith("inpaint:") for e in peel)
    n = sum(depths.values())
    if not n:
        return None
    return {"samples": n, "shards": len(names), "depth": dict(sorted(depths.items())),
            "saliency_passes": saliency / n, "inpaint_passes": inpaint / n}


def apply_depth(rows: list[Row], counts: dict[str, float], depth: dict[str, Any]) -> None:
    """More model passes per synthesized sample with peeling: inpainting runs once per layer made (and per
    failed try), saliency once more per pass on a background."""
    for r in rows:
        if r.stage == "inpaint":
            r.items = counts["synthesized"] * depth["inpaint_passes"]
        elif r.stage == "saliency":
            r.items += counts["synthesized"] * (depth["saliency_passes"] - 1)


@dataclass
class Row:
    job: str
    stage: str
    per: str            # cpu | gpu
    rate: float | None  # items/s per unit
    items: float
    source: str

    @property
    def unit_hours(self) -> float | None:
        return None if not self.rate else self.items / self.rate / 3600


ITEMS_OF_JOB = {"download": "inputs", "synthesize": "downloaded", "score": "synthesized"}


def build_rows(figs: dict[str, Any], inputs: float, rates: dict[str, float],
               yields: dict[str, float]) -> tuple[list[Row], dict[str, float]]:
    """One row per stage with the items it processes; returns the rows and the counts
    {inputs, downloaded, synthesized}. A stage's `items` (figures) says what it sees: inpaint and encode
    only the samples that passed the mask checks (`--yield synthesize`), the others all downloaded images."""
    unknown = set(rates) - set(figs["rates"]) | set(yields) - set(figs["yields"])
    if unknown:
        raise ConfigError(f"unknown stage or yield {sorted(unknown)}; known stages: {sorted(figs['rates'])}, "
                          f"yields: {sorted(figs['yields'])}")
    y = {k: yields.get(k, v["value"]) for k, v in figs["yields"].items()}
    if any(not 0 < v <= 1 for v in y.values()):
        raise ConfigError(f"--yield: a yield is a fraction in (0, 1], got {y}")
    counts = {"inputs": inputs, "downloaded": inputs * y["download"]}
    counts["synthesized"] = counts["downloaded"] * y["synthesize"]
    rows = []
    for stage in sorted(figs["rates"], key=lambda s: STAGE_ORDER.index(s) if s in STAGE_ORDER else 99):
        f = figs["rates"][stage]
        rate = rates.get(stage, f["rate"])
        source = "--rate (command line)" if stage in rates else f.get("ref") or f["source"]
        rows.append(Row(f["job"], stage, f["per"], rate, counts[f.get("items", ITEMS_OF_JOB[f["job"]])], source))
    return rows, counts


def nodes_needed(unit_hours: float, hours: float, units_per_node: int) -> int:
    return max(1, math.ceil(unit_hours / (hours * units_per_node))) if unit_hours else 0


def _n(x: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f}{suffix}"
    return f"{x:.0f}"


def _gb(b: float) -> str:
    return f"{b / 1e12:,.1f} TB" if b >= 1e12 else f"{b / 1e9:,.1f} GB"


def _e2e_hours(figs: dict[str, Any], rates: dict[str, float], counts: dict[str, float],
               passes: float = 1.0) -> float | None:
    """GPU-hours of synthesize at the measured end-to-end rate: per downloaded image everything but SD2
    (1/e2e - 1/inpaint s), plus SD2 only for the samples that passed the mask checks."""
    e2e, inpaint = figs.get("end_to_end", {}).get("synthesize"), figs["rates"].get("inpaint", {}).get("rate")
    if not (e2e and e2e.get("rate")) or "saliency" in rates or "inpaint" in rates:
        return None
    sd2 = 1 / inpaint if inpaint else 0.0
    return (counts["downloaded"] * max(1 / e2e["rate"] - sd2, 0.0) + counts["synthesized"] * sd2 * passes) / 3600


def format_plan(args: argparse.Namespace, figs: dict[str, Any]) -> str:
    rates, yields, prices = _pairs(args.rate, "rate"), _pairs(args.yield_, "yield"), _pairs(args.price, "price")
    if set(prices) - PRICE_KEYS:
        raise ConfigError(f"--price: unknown {sorted(set(prices) - PRICE_KEYS)}; known: {sorted(PRICE_KEYS)}")
    if args.inputs <= 0 or args.hours <= 0:
        raise ConfigError("--inputs and --hours must be positive")
    bandwidth = args.bandwidth_gbps if args.bandwidth_gbps is not None else figs["download_node"]["bandwidth_gbps"]
    if bandwidth <= 0:
        raise ConfigError("--bandwidth-gbps must be positive")
    rows, counts = build_rows(figs, args.inputs, rates, yields)
    depth = measure_depth(args.shards, storage_options=getattr(args, "storage_options", None)) if args.shards else None
    if depth:
        apply_depth(rows, counts, depth)
    kept = args.kept if args.kept is not None else counts["synthesized"]
    shown = "bench/figures.json" if Path(args.figures) == default_figures_path() else args.figures
    out = [f"l2i plan: {_n(args.inputs)} inputs -> {_n(counts['downloaded'])} downloaded -> "
           f"{_n(counts['synthesized'])} synthesized -> {_n(kept)} kept; wall-clock target {args.hours:g} h per job; "
           f"nodes of {args.gpus_per_node} GPUs + {args.cpus_per_node} cores, {bandwidth:g} Gbit/s; figures {shown}",
           "", f"{'job':<11}{'stage':<10}{'on':<5}{'items/s/unit':>13}{'items':>10}{'unit-hours':>13}  source"]
    if depth:
        hist = ", ".join(f"{d}: {c / depth['samples']:.0%}" for d, c in depth["depth"].items())
        out.insert(1, f"peeling measured on {depth['samples']} samples of {depth['shards']} shards of {args.shards}: "
                      f"depth {hist}; per synthesized sample {depth['inpaint_passes']:.2f} inpainting and "
                      f"{depth['saliency_passes']:.2f} saliency passes (counted below)")
    hours_by: dict[tuple[str, str], float] = {}
    missing = []
    for r in rows:
        uh = r.unit_hours
        if uh is None:
            missing.append(r.stage)
        else:
            hours_by[(r.job, r.per)] = hours_by.get((r.job, r.per), 0.0) + uh
        rate = f"{r.rate:g}" if r.rate else "-"
        cell = f"{uh:,.0f}" if uh is not None else "not measured"
        out.append(f"{r.job:<11}{r.stage:<10}{r.per.upper():<5}{rate:>13}{_n(r.items):>10}{cell:>13}  {r.source}")
    gpu_total = sum(h for (_, per), h in hours_by.items() if per == "gpu")
    cpu_total = sum(h for (_, per), h in hours_by.items() if per == "cpu")
    out.append(f"\nGPU-hours (stages with a rate): {gpu_total:,.0f}; CPU core-hours: {cpu_total:,.0f}")
    e2e_h = _e2e_hours(figs, rates, counts, depth["inpaint_passes"] if depth else 1.0)
    if e2e_h is not None:
        e2e = figs["end_to_end"]["synthesize"]
        out.append(f"synthesize at the measured end-to-end rate ({e2e['rate']:g} img/s per GPU, SD2 only after the "
                   f"mask checks): {e2e_h:,.0f} GPU-hours  [{e2e.get('ref') or e2e['source']}]")
        hours_by[("synthesize", "gpu")] = max(hours_by.get(("synthesize", "gpu"), 0.0), e2e_h)
    if missing:
        out.append(f"not measured, left out of the totals: {', '.join(missing)} (--rate STAGE=IMG_S to add them)")

    raw_b, l2i_b, raw_src, l2i_src = _storage(args, figs)
    raw_total, l2iu_total, l2i_total = counts["downloaded"] * raw_b, counts["synthesized"] * l2i_b, kept * l2i_b
    link_h = raw_total * 8 / (bandwidth * 1e9) / 3600  # node-hours of the download at line rate
    out.append(f"\nnodes to finish each job in {args.hours:g} h, and its wall-clock on them:")
    walls: list[tuple[str, float]] = []
    for job in ("download", "synthesize", "score"):
        g, c = hours_by.get((job, "gpu"), 0.0), hours_by.get((job, "cpu"), 0.0)
        if not g and not c:
            out.append(f"  {job:<11} unknown (no measured rate)")
            continue
        bounds = {"GPUs": nodes_needed(g, args.hours, args.gpus_per_node) if g else 0,
                  "CPUs": nodes_needed(c, args.hours, args.cpus_per_node),
                  "bandwidth": nodes_needed(link_h, args.hours, 1) if job == "download" else 0}
        bound = max(bounds, key=lambda k: bounds[k])
        n = bounds[bound]
        wall = max(g / (n * args.gpus_per_node), c / (n * args.cpus_per_node), link_h / n if job == "download" else 0)
        walls.append((job, wall))
        kind = "GPU" if g else "CPU"
        extra = f", {link_h:,.0f} node-h at {bandwidth:g} Gbit/s" if job == "download" else ""
        out.append(f"  {job:<11} {n:>6} {kind} nodes  ({g:,.0f} GPU-h, {c:,.0f} core-h{extra}; bound by {bound}) "
                   f"{wall:,.1f} h")
    chain = " + ".join(f"{job} {w:,.1f} h" for job, w in walls)
    unknown = [j for j in ("download", "synthesize", "score") if j not in dict(walls)]
    out.append(f"  whole chain (jobs run one after another): {chain} = {sum(w for _, w in walls):,.1f} h"
               + (f" + {', '.join(unknown)} (not measured)" if unknown else "") + "; filter: copies, not modelled")

    out.append("\nstorage (per million, and for this run):")
    for what, per, total, src in (("raw shards", raw_b, raw_total, f"per downloaded image; {raw_src}"),
                                  ("L2I(U) shards", l2i_b, l2iu_total, f"per sample; {l2i_src}"),
                                  ("L2I shards", l2i_b, l2i_total, "per kept sample")):
        out.append(f"  {what:<14} {_gb(per * 1e6):>10} /M  {_gb(total):>10}  [{src}]")
    stored = raw_total + l2iu_total + l2i_total
    out.append(f"  all three      {_gb(stored):>24}  (delete raw after synthesize: {_gb(stored - raw_total)})")
    out += format_requests(args.raw_shard_size, counts, kept, raw_b, l2i_b, _n)

    egress = args.egress_copies * l2i_total + (raw_total + 2 * l2iu_total if args.cross_region else 0)
    out.append("\nnetwork:")
    out.append(f"  in from the web (download)                {_gb(raw_total):>10}")
    out.append(f"  bucket reads (synthesize, score, filter)  {_gb(raw_total + 2 * l2iu_total):>10}"
               "  (free inside the bucket's region)")
    out.append(f"  egress out of the region                  {_gb(egress):>10}  ({args.egress_copies:g} copy of L2I"
               f"{' + every bucket read, --cross-region' if args.cross_region else ''})")
    if prices:
        cost = {"gpu_hour": sum(h for (_, p), h in hours_by.items() if p == "gpu"),
                "cpu_hour": cpu_total, "storage_gb_month": stored / 1e9, "egress_gb": egress / 1e9}
        parts = [f"{k} {cost[k]:,.0f} x {v:g} = {cost[k] * v:,.0f}" for k, v in prices.items()]
        out.append("\ncost (your --price figures; storage for one month): " + "; ".join(parts)
                   + f"; total {sum(cost[k] * v for k, v in prices.items()):,.0f}")
    return "\n".join(out)


def _storage(args: argparse.Namespace, figs: dict[str, Any]) -> tuple[float, float, str, str]:
    st = figs["storage"]
    raw, l2i = st["raw_bytes_per_image"], st["l2i_bytes_per_sample"]
    raw_b, raw_src = raw["value"], "figures: " + (raw.get("ref") or raw["source"])
    l2i_b, l2i_src = l2i["value"], "figures: " + (l2i.get("ref") or l2i["source"])
    if args.raw:
        m = measure_shards(args.raw, args.storage_options)
        raw_b, raw_src = m["bytes_per_ok"], f"measured: {m['ok']} images in {m['shards']} shards of {args.raw}"
    if args.shards:
        m = measure_shards(args.shards, args.storage_options)
        l2i_b, l2i_src = m["bytes_per_ok"], f"measured: {m['ok']} samples in {m['shards']} shards of {args.shards}"
    return raw_b, l2i_b, raw_src, l2i_src


def run_plan(args: argparse.Namespace) -> int:
    figs = load_figures(args.figures)
    paper = figs.get("paper_run", {})
    if args.inputs is None:
        args.inputs = float(paper.get("inputs", 0)) or None
        if args.kept is None and paper.get("kept"):
            args.kept = float(paper["kept"])
    if args.inputs is None:
        raise ConfigError("--inputs is required (the figures file has no paper_run)")
    print(format_plan(args, figs))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="GPU-hours, nodes, storage and egress of a run, from measured rates",
                       description=__doc__)
    p.add_argument("--inputs", type=float, help="input rows (URLs); default: the paper's run (~600M)")
    p.add_argument("--kept", type=float, help="samples kept by `l2i filter`; default: the paper's 57.02M "
                   "when --inputs is also defaulted, else every synthesized sample")
    p.add_argument("--hours", type=float, default=168, help="wall-clock target per job (default: %(default)s)")
    p.add_argument("--gpus-per-node", type=int, default=8, help="default: %(default)s")
    p.add_argument("--cpus-per-node", type=int, default=96, help="cores per node (default: %(default)s)")
    p.add_argument("--figures", default=str(default_figures_path()), help="rates file (default: %(default)s)")
    p.add_argument("--rate", action="append", default=[], metavar="STAGE=ITEMS_PER_S",
                   help="override a stage's rate per CPU core or GPU, e.g. --rate saliency=40 (repeatable); "
                        "--rate download=50 is the per-core rate measured here on loopback (an upper bound)")
    p.add_argument("--bandwidth-gbps", type=float, default=None,
                   help="internet bandwidth per download node, Gbit/s (default: figures' download_node)")
    p.add_argument("--raw-shard-size", type=int, default=10_000,
                   help="`l2i download --raw-shard-size` (default: %(default)s), for the request counts")
    p.add_argument("--yield", dest="yield_", action="append", default=[], metavar="STEP=FRACTION",
                   help="override a yield, e.g. --yield download=0.85 (repeatable)")
    p.add_argument("--shards", help="L2I output dir (or URL) to measure bytes per sample from")
    p.add_argument("--raw", help="raw shard dir (or URL) to measure bytes per input row from")
    add_storage_options_arg(p)  # for --shards and --raw
    p.add_argument("--egress-copies", type=float, default=1, help="copies of L2I leaving the region (default: 1)")
    p.add_argument("--cross-region", action="store_true", help="compute runs outside the bucket's region")
    p.add_argument("--price", action="append", default=[], metavar="KEY=USD",
                   help=f"optional unit prices, keys {sorted(PRICE_KEYS)}; prints a dollar total")
    p.set_defaults(func=run_plan)
