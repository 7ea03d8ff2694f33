"""metrics.md / metrics.png in the layout of the paper's Tables I-III (and V), the paper's numbers beside ours.

`metrics.json` holds, per metric key (fid_ll2ie, fid_la, clip, iou_saliency, iou_human), a dict with
`value` (FID) or `mean`/`std` and the counts; absent keys were skipped (listed under `skipped`).
"""
from __future__ import annotations

import io
import json

from l2i_pipeline.core.errors import InputError, NotFound
from l2i_pipeline.core.storage import open_store

# Table I (FID LL2I-E, FID LA, CLIP) and Table II (IOU ICON, IOU human); None = not reported.
PAPER = [
    # model, resolution, fid_ll2ie, fid_la, clip, iou_icon, iou_human
    ("CaT²I-AE-SD", 256, 10.51, 14.83, 0.251, 0.885, 0.799),
    ("CaT²I-AE-SD (no-sup)", 256, 13.84, 19.54, 0.241, 0.904, 0.851),
    ("SD-AE-UNet", 256, 18.53, 21.96, 0.219, 0.779, 0.766),
    ("SD-AE-UNet (ft)", 256, 20.15, 24.84, 0.234, 0.670, 0.681),
    ("SD-LAION-L²I", 256, 11.80, 15.06, 0.250, None, None),
    ("CaT²I-AE-SD (512)", 512, 7.54, 13.01, 0.261, None, None),
    ("SD-v1-4 (LAION-2B + LAION-A)", 512, 9.13, 9.13, 0.279, None, None),
]
PAPER_TABLE3 = [("LAION-L²I", 10.51, 0.251, 0.799), ("LAION-L²I (U)", 13.82, 0.234, 0.736)]
PAPER_TABLE5 = [("LAION-A", 0.278, 0.037), ("LAION-L²I", 0.273, 0.034)]
DASH = "–"


def _num(m: dict | None, digits: int, std: bool = False) -> str:
    if not m or ("value" not in m and "mean" not in m):
        return DASH
    if "value" in m:
        return f"{m['value']:.{digits}f}"
    text = f"{m['mean']:.{digits}f}"
    return f"{text} ± {m['std']:.{digits}f}" if std and m.get("std") is not None else text


def _p(v: float | None, digits: int) -> str:
    return DASH if v is None else f"{v:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def model_markdown(report: dict) -> str:
    m, name = report["metrics"], report["name"]
    ours = f"**ours: {name}**"
    sal = m.get("iou_saliency")
    icon_col = _num(sal, 3)
    notes = []
    if sal and not sal.get("icon"):
        icon_col += "†"
        notes.append("† IOU against the classical saliency backend (not ICON): not comparable with the paper's column.")
    res = str(report.get("resolution") or DASH)
    lines = [f"# l2i eval: {name}", "",
             f"Samples: `{report.get('samples')}` ({report.get('n_samples')} composites). "
             "Protocol: section V-B of Text2Layer (clean-FID of composites, raw CLIP ViT-L/14 cosine, "
             "IOU of m̂ > 0.5). Paper numbers are the paper's, not re-measured.", "",
             "## Table I: FID and CLIP score", ""]
    rows = [[f"paper: {n}", str(r), _p(a, 2), _p(b, 2), _p(c, 3)] for n, r, a, b, c, _, _ in PAPER]
    rows.append([ours, res, _num(m.get("fid_ll2ie"), 2), _num(m.get("fid_la"), 2), _num(m.get("clip"), 3, True)])
    lines += _table(["model", "res", "FID LL²I-E ↓", "FID LA ↓", "CLIP score ↑"], rows)
    lines += ["", "## Table II: mask IOU", ""]
    rows = [[f"paper: {n}", _p(i, 3), _p(h, 3)] for n, _, _, _, _, i, h in PAPER if i is not None]
    rows.append([ours, icon_col, _num(m.get("iou_human"), 3)])
    lines += _table(["model", "IOU (ICON)", "IOU (human)"], rows)
    lines += ["", "## Table III: trained on L²I vs unfiltered L²I(U)", ""]
    rows = [[f"paper: CaT²I-AE-SD on {n}", _p(f, 2), _p(c, 3), _p(h, 3)] for n, f, c, h in PAPER_TABLE3]
    rows.append([ours, _num(m.get("fid_ll2ie"), 2), _num(m.get("clip"), 3), _num(m.get("iou_human"), 3)])
    lines += _table(["model", "FID ↓", "CLIP score ↑", "IOU (human) ↑"], rows)
    lines += [""] + ([*notes, ""] if notes else []) + _counts(m) + _skips(report)
    return "\n".join(lines) + "\n"


def _counts(m: dict) -> list[str]:
    out = []
    for key, label in (("fid_ll2ie", "FID LL²I-E"), ("fid_la", "FID LA")):
        if m.get(key):
            out.append(f"- {label}: {m[key]['n_samples']} samples vs {m[key]['n_ref']} reference images")
    for key, label in (("clip", "CLIP score"), ("iou_saliency", "IOU (saliency)"), ("iou_human", "IOU (human)")):
        if m.get(key):
            out.append(f"- {label}: mean over {m[key]['n']} samples")
    return (["## Counts", ""] + out + [""]) if out else []


def _skips(report: dict) -> list[str]:
    out = []
    if report.get("skipped"):
        out += ["## Skipped", ""] + [f"- {s}" for s in report["skipped"]] + [""]
    if report.get("warnings"):
        out += ["## Warnings", ""] + [f"- {w}" for w in report["warnings"]] + [""]
    return out


def dataset_markdown(report: dict) -> str:
    d = report["dataset"]
    rows = [[f"paper: {n}", f"{m:.3f} ± {s:.3f}"] for n, m, s in PAPER_TABLE5]
    rows += [[f"**ours: {label}**", _num(d.get(key), 3, True) + (f" (n={d[key]['n']})" if d.get(key) else "")]
             for key, label in (("laion_a", "LAION-A (raw, not in L²I)"), ("l2i", "LAION-L²I"))]
    lines = ["# l2i eval --dataset-only", "", "## Table V: CLIP score of captions vs images (mean ± std)", ""]
    return "\n".join(lines + _table(["dataset", "CLIP score"], rows) + [""] + _skips(report)) + "\n"


def plot(report: dict) -> bytes:
    """metrics.png: one panel per metric, the paper's models as grey bars, ours in colour (or 'skipped')."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = report["metrics"]
    panels = [("fid_ll2ie", "FID LL²I-E ↓", 2), ("fid_la", "FID LA ↓", 3), ("clip", "CLIP score ↑", 4),
              ("iou_saliency", "IOU (ICON) ↑", 5), ("iou_human", "IOU (human) ↑", 6)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), constrained_layout=True)
    for ax, (key, title, col) in zip(axes, panels):
        names = [row[0] for row in PAPER if row[col] is not None]
        vals = [row[col] for row in PAPER if row[col] is not None]
        ours = m.get(key) if _num(m.get(key), 3) != DASH else None
        label = "ours" + ("†" if key == "iou_saliency" and ours and not ours.get("icon") else "")
        names.append(label)
        vals.append(ours.get("value", ours.get("mean")) if ours else 0.0)
        colors = ["0.7"] * (len(vals) - 1) + ["tab:orange"]
        ax.barh(range(len(vals)), vals, color=colors)
        if ours:
            ax.text(vals[-1], len(vals) - 1, f" {vals[-1]:.3g}", va="center", fontsize=7)
        ax.set_yticks(range(len(vals)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(title if ours else f"{title}\n(ours skipped)", fontsize=9)
    fig.suptitle(f"l2i eval: {report['name']} (grey: paper; † classical saliency, not ICON)", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png")
    plt.close(fig)
    return buf.getvalue()


def compare(dirs: list[str], storage_options: dict | str | None = None) -> str:
    """One markdown table of several eval dirs (paths or URLs), sorted by FID LL²I-E (then FID LA); missing
    values last."""
    rows = []
    for d in dirs:
        store = open_store(d, storage_options)
        path = store.url_of("metrics.json") if "://" in d else f"{d.rstrip('/')}/metrics.json"
        if not store.exists("metrics.json"):
            raise NotFound(f"{path} not found: expected the --out dir of `l2i eval`")
        try:
            r = json.loads(store.get("metrics.json"))
            m = r["metrics"]
        except (ValueError, KeyError) as e:
            raise InputError(f"{path} is not an `l2i eval` metrics.json ({e})") from None
        rows.append((r, m))

    def key(rm):
        m = rm[1]
        return tuple((m[k]["value"] if m.get(k) else float("inf")) for k in ("fid_ll2ie", "fid_la"))
    rows.sort(key=key)
    table = [[r["name"], f"`{d}`", str(r.get("n_samples")), _num(m.get("fid_ll2ie"), 2), _num(m.get("fid_la"), 2),
              _num(m.get("clip"), 3, True),
              _num(m.get("iou_saliency"), 3) + ("" if not m.get("iou_saliency") or m["iou_saliency"].get("icon")
                                                 else "†"), _num(m.get("iou_human"), 3)]
             for (r, m), d in zip(rows, [r[0].get("out", "") for r in rows])]
    header = ["run", "dir", "samples", "FID LL²I-E ↓", "FID LA ↓", "CLIP ↑", "IOU (ICON) ↑", "IOU (human) ↑"]
    return "\n".join(_table(header, table) + ["", "† IOU against the classical saliency backend, not ICON."]) + "\n"
