"""`l2i stats DIR`: what a run produced, in the form of the paper's Appendix II.

Counts by status and reason; mask-area histograms at several binarisation thresholds (Fig. 17);
8-connected component counts ignoring components under 100 px (Fig. 18); caption-length percentiles
with stopwords, symbols and punctuation removed (Table IV), for all input rows vs the kept ones; with
peeled shards (layers.count > 1, issue 26) the depth histogram and why peeling stopped.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from l2i_pipeline.commands.args import add_storage_options_arg
from l2i_pipeline.core.errors import NotFound, StorageError
from l2i_pipeline.core.outputs import check_l2i_dir
from l2i_pipeline.core.shards import iter_output_samples, list_output_shards, read_output_index
from l2i_pipeline.core.storage import Store, open_store
from l2i_pipeline.formats.decode import decode_mask
from l2i_pipeline.formats.names import MASK
from stages.layers import count_components

AREA_THRESHOLDS = (0.1, 0.3, 0.5, 0.7)
COMPONENT_THRESHOLDS = (0.1, 0.5)
PERCENTILES = (1, 10, 25, 50, 75, 90, 99)
STOPWORDS = frozenset("""a an the and or but if of at by for with about against between into through during before
after above below to from up down in out on off over under again further then once here there when where why
how all any both each few more most other some such no nor not only own same so than too very s t can will just
don should now i me my we our you your he him his she her it its they them their what which who whom this that
these those am is are was were be been being have has had having do does did doing would could ought""".split())
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def caption_tokens(text: str | None) -> int:
    """Words left after dropping stopwords, symbols and punctuation (the paper's Table IV count)."""
    return sum(1 for w in _WORD.findall((text or "").lower()) if w not in STOPWORDS)


def collect(out_dir: str | Path, max_masks: int = 2000, storage_options: dict | str | None = None) -> dict:
    out = open_store(out_dir, storage_options)
    check_l2i_dir(out, "l2i stats")
    names = list_output_shards(out)
    if not names:
        raise NotFound(f"no complete shards in {out.url}")
    rows = read_output_index(out, names).to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    result = {
        "shards": len(names),
        "samples": len(rows),
        "status": dict(Counter(r["status"] for r in rows)),
        "reasons": dict(Counter(r["reason"] for r in rows if r["status"] != "ok").most_common()),
        "caption_tokens": {
            "all input rows": _percentiles([caption_tokens(r["caption"]) for r in rows]),
            "ok samples": _percentiles([caption_tokens(r["caption"]) for r in ok]),
        },
    }
    depth = depth_counts(ok)
    if depth:
        result["depth"], result["peel_stopped"] = depth
    areas = {t: [] for t in AREA_THRESHOLDS}
    comps = {t: [] for t in COMPONENT_THRESHOLDS}
    seen = 0
    for name in names:  # masks are read from the tars: the index only has the area at the run's threshold
        if seen >= max_masks:
            break  # do not load the remaining tars at all
        for _, members in iter_output_samples(out, name):
            if seen >= max_masks:
                break
            m = decode_mask(members[MASK])
            for t in AREA_THRESHOLDS:
                areas[t].append(float((m > t).mean()))
            for t in COMPONENT_THRESHOLDS:
                comps[t].append(count_components(m > t))
            seen += 1
    result["masks_read"] = seen
    result["mask_area"] = {str(t): v for t, v in areas.items()}
    result["components"] = {str(t): v for t, v in comps.items()}
    return result


def depth_counts(ok_rows: list[dict]) -> tuple[dict[str, int], dict[str, int]] | None:
    """({depth: samples}, {why peeling stopped: samples}) from the index's meta of the ok samples, or None when
    no sample records a depth (shards made with layers.count=1 or before issue 26)."""
    depths: Counter = Counter()
    stopped: Counter = Counter()
    for r in ok_rows:
        try:
            meta = json.loads(r.get("meta") or "{}")
        except ValueError:
            continue
        if isinstance(meta.get("depth"), int):
            depths[meta["depth"]] += 1
            for e in meta.get("peel") or []:
                if isinstance(e, dict) and e.get("stopped"):
                    stopped[e["stopped"]] += 1
    if not depths:
        return None
    return {str(d): depths[d] for d in sorted(depths)}, dict(stopped.most_common())


def _percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {str(p): 0.0 for p in PERCENTILES}
    return {str(p): float(np.percentile(values, p, method="lower")) for p in PERCENTILES}


def format_report(r: dict) -> str:
    lines = [f"shards: {r['shards']}   samples: {r['samples']}   masks read: {r['masks_read']}", "",
             f"{'status / reason':<44}{'count':>8}{'share':>8}"]
    total = max(r["samples"], 1)
    for k, v in sorted(r["status"].items()):
        lines.append(f"{k:<44}{v:>8}{v / total:>8.1%}")
    for k, v in r["reasons"].items():
        lines.append(f"  {k[:42]:<42}{v:>8}{v / total:>8.1%}")
    lines += ["", "caption length (tokens, stopwords/symbols/punctuation removed; paper Table IV)",
              f"{'percentile':<12}" + "".join(f"{k:>18}" for k in r["caption_tokens"])]
    cols = list(r["caption_tokens"].values())
    for p in PERCENTILES:
        lines.append(f"{p:<12}" + "".join(f"{c[str(p)]:>18.0f}" for c in cols))
    lines += ["", "mask area by binarisation threshold (Fig. 17)",
              f"{'threshold':<12}{'mean':>8}{'p10':>8}{'p50':>8}{'p90':>8}"]
    for t, v in r["mask_area"].items():
        if v:
            lines.append(f"{t:<12}{np.mean(v):>8.3f}{np.percentile(v, 10):>8.3f}{np.median(v):>8.3f}"
                         f"{np.percentile(v, 90):>8.3f}")
    lines += ["", "8-connected components >= 100 px (Fig. 18)", f"{'threshold':<12}" +
              "".join(f"{k:>6}" for k in ("0", "1", "2", "3", "4", "5+"))]
    for t, v in r["components"].items():
        c = Counter(min(x, 5) for x in v)
        lines.append(f"{t:<12}" + "".join(f"{c.get(i, 0):>6}" for i in range(6)))
    if r.get("depth"):
        n = max(sum(r["depth"].values()), 1)
        lines += ["", "layers per ok sample (depth, layers.count > 1)", f"{'depth':<12}{'samples':>8}{'share':>8}"]
        lines += [f"{d:<12}{c:>8}{c / n:>8.1%}" for d, c in r["depth"].items()]
        lines += [f"  peeling stopped: {k[:40]:<40}{v:>8}" for k, v in r.get("peel_stopped", {}).items()]
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4 if r.get("depth") else 3, figsize=(20 if r.get("depth") else 15, 4))
    for t, v in r["mask_area"].items():
        ax[0].hist(v, bins=20, range=(0, 1), histtype="step", label=f"t={t}")
    ax[0].set(title="mask area (Fig. 17)", xlabel="area ratio", ylabel="samples")
    ax[0].legend()
    for t, v in r["components"].items():
        ax[1].hist(v, bins=np.arange(0, 12) - 0.5, histtype="step", label=f"t={t}")
    ax[1].set(title="connected components >= 100 px (Fig. 18)", xlabel="components")
    ax[1].legend()
    for label, pct in r["caption_tokens"].items():
        ax[2].plot(list(PERCENTILES), [pct[str(p)] for p in PERCENTILES], marker="o", label=label)
    ax[2].set(title="caption tokens by percentile (Table IV)", xlabel="percentile", ylabel="tokens")
    ax[2].legend()
    if r.get("depth"):
        ax[3].bar([int(d) for d in r["depth"]], list(r["depth"].values()))
        ax[3].set(title="layers per sample (depth)", xlabel="depth", ylabel="samples", xticks=range(1, 5))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plot(r: dict, store: Store, plot_path: str | None) -> str:
    """Where the plots went: --plot, else stats.png beside the shards. A dataset this user cannot write to
    (read-only mount or bucket) keeps the report: a warning instead of the default plot; a --plot that
    cannot be written is an error."""
    try:
        if plot_path or store.local:
            path = Path(plot_path or Path(store.root) / "stats.png")
            plot(r, path)
            return str(path)
        buf = io.BytesIO()  # a bucket: the plot goes beside the shards
        plot(r, buf)
        store.put("stats.png", buf.getvalue())
        return store.url_of("stats.png")
    except OSError as e:  # StorageError (no access to a bucket) is one too
        if plot_path:
            raise StorageError(f"cannot write --plot {plot_path}: {type(e).__name__}: {e}") from None
        print(f"l2i stats: warning: stats.png not written beside the shards ({type(e).__name__}: {e}); "
              "give --plot PATH to write the plots elsewhere", file=sys.stderr)
        return "not written"


def run_stats(args: argparse.Namespace) -> int:
    r = collect(args.dir, args.max_masks, args.storage_options)
    print(format_report(r))
    plot_path = write_plot(r, open_store(args.dir, args.storage_options), args.plot)
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(r))
        except OSError as e:
            raise StorageError(f"cannot write --json {args.json}: {type(e).__name__}: {e}") from None
    print(f"\nplots: {plot_path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="counts, mask and caption statistics of an L2I(U) directory")
    p.add_argument("dir", help="output of `l2i synthesize` or `l2i filter`: a path or a URL (s3://, gs://, ...)")
    add_storage_options_arg(p)
    p.add_argument("--max-masks", type=int, default=2000, help="masks to read for the histograms")
    p.add_argument("--plot", help="PNG path (default DIR/stats.png)")
    p.add_argument("--json", help="also write the raw figures as JSON here")
    p.set_defaults(func=run_stats)
