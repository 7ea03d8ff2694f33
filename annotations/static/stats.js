// Admin stats: per task totals, per-annotator throughput, good/bad balance, agreement (Cohen's kappa per
// annotator pair, Fleiss' kappa with more than two annotators), disagreements.
// Every value is inserted with textContent: annotator names and keys are untrusted.
"use strict";

function fmt(v, digits) {
  if (v === null || v === undefined) return "–";
  return typeof v === "number" && digits !== undefined ? v.toFixed(digits) : String(v);
}

function table(headers, rows) {
  const t = L2I.el("table");
  const head = L2I.el("tr");
  for (const h of headers) head.append(L2I.el("th", h));
  t.append(head);
  for (const row of rows) {
    const tr = L2I.el("tr");
    for (const cell of row) {
      const td = L2I.el("td");
      if (cell instanceof Node) td.append(cell); else td.textContent = fmt(cell);
      tr.append(td);
    }
    t.append(tr);
  }
  return t;
}

function thumb(view, item) {
  const img = L2I.el("img", null, "thumb");
  img.loading = "lazy";
  img.alt = view;
  img.src = L2I.imgUrl(view, item);
  return img;
}

function renderTask(t) {
  const sec = L2I.el("section", null, "task");
  sec.dataset.task = t.task;
  sec.append(L2I.el("h2", t.task === "mask" ? "Mask quality" : "Inpainting quality"));
  sec.append(table(
    ["pool", "labelled samples", "labels", "good", "bad", "good share", "last hour", "overlap samples",
     "pairs", "agreement", t.kappa_kind === "fleiss" ? "Fleiss' κ" : "Cohen's κ"],
    [[t.pool, t.labelled_samples, t.labels, t.good, t.bad, fmt(t.good_share, 3), t.last_hour, t.overlap_samples,
      t.pairs, fmt(t.agreement, 3), fmt(t.kappa, 3)]]));
  sec.append(L2I.el("h3", "Agreement per annotator pair (Cohen's κ)"));
  sec.append(table(["A", "B", "samples", "agreements", "A good", "B good", "good/good", "good/bad", "bad/good",
                    "bad/bad", "κ"],
    t.kappa_pairs.map((p) => [p.a, p.b, p.samples, p.agreements, p.a_good, p.b_good, p.table["good/good"],
                              p.table["good/bad"], p.table["bad/good"], p.table["bad/bad"], fmt(p.kappa, 3)])));
  if (t.fleiss) {
    sec.append(L2I.el("p", `Fleiss' κ ${fmt(t.fleiss.kappa, 3)} over ${t.fleiss.samples} samples, ` +
                           `${t.fleiss.ratings} ratings by ${t.fleiss.raters} annotators`, "meta"));
  }
  sec.append(L2I.el("h3", "Annotators"));
  sec.append(table(["annotator", "labels", "good", "bad", "skips", "last hour", "per active hour"],
    t.annotators.map((a) => [a.annotator, a.labels, a.good, a.bad, a.skips, a.last_hour, fmt(a.per_hour, 1)])));
  sec.append(L2I.el("h3", `Disagreements (${t.disagreements.length})`));
  const view = t.task === "mask" ? "mask" : "bg_outline";
  sec.append(table(["sample", "key", "split", "labels"], t.disagreements.map((d) => [
    thumb(view, d), d.key, d.split, d.labels.map((l) => `${l.annotator}: ${l.label}`).join(", ")])));
  return sec;
}

async function load() {
  try {
    const s = await L2I.api("/api/stats");
    const box = document.getElementById("tasks");
    box.replaceChildren(...s.tasks.map(renderTask));
    document.getElementById("generated").textContent =
      `overlap ${Math.round(s.overlap * 100)}% · as of ${new Date(s.generated * 1000).toLocaleTimeString()}`;
    L2I.showError("");
  } catch (e) {
    L2I.showError(e.message);
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("refresh").addEventListener("click", load);
  try {
    await L2I.me();
  } catch (e) {
    L2I.showError(`${e.message}; press Refresh to try again`);  // cleared by the next successful load
    return;
  }
  await load();
});
