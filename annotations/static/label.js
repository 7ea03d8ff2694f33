// The labeling page. The annotator never waits for the server: a key press advances at once and the label
// is posted through one ordered outbox (retried on network errors), so labels, undos and refills reach the
// server in the order they were made. The next samples' images are prefetched. Taking samples is a POST with
// the CSRF token (it reserves them). A label the server refuses with 409 (the lease lapsed and the sample went
// to someone else) is dropped and the held samples are fetched afresh.
"use strict";

const TASK = location.pathname.split("/").pop() === "inpaint" ? "inpaint" : "mask";
const HOLD = 6;  // samples held ahead (the server leases them to this annotator)
const PANELS = {
  mask: [
    {title: "I", view: "image"},
    {title: "I with mask m", view: "mask", alt: "image"},
    {title: "cutout F", view: "cutout"},
  ],
  inpaint: [
    {title: "I (inpainted region m\u0303 outlined)", view: "image_outline", alt: "image"},
    {title: "B (inpainted region m\u0303 outlined)", view: "bg_outline", alt: "bg"},
  ],
};
const GUIDE = {
  mask: ["Mask quality: is m a good salient-object mask?", "Bad if any of:",
         "the masked object is largely incomplete;", "the mask contains regions of the background;",
         "the selected salient object is too small."],
  inpaint: ["Inpainting quality: is B a clean background?", "Bad if any of:",
            "there is an object (or part of one) in the inpainted region;", "there are visible artifacts;",
            "the inpainted region is not cohesive with the rest of the image."],
};

const state = {
  current: null, queue: [], done: new Set(), overlay: true, undoing: false,
  outbox: Promise.resolve(), unsynced: 0, preloaded: new Map(), poll: null,
};

function send(fn, attempts = 6) {
  // Chain onto the outbox; retry network errors and 5xx with backoff, give up on 4xx (shown to the user).
  state.unsynced += 1;
  showSync();
  const run = async () => {
    for (let i = 0; ; i++) {
      try {
        return await fn();
      } catch (e) {
        const retriable = e.status === undefined || e.status >= 500;
        if (!retriable || i + 1 >= attempts) { L2I.showError(e.message); return null; }
        await new Promise((r) => setTimeout(r, 250 * 2 ** i));
      }
    }
  };
  const p = state.outbox.then(run).finally(() => { state.unsynced -= 1; showSync(); });
  state.outbox = p;
  return p;
}

function showSync() {
  document.getElementById("sync").textContent = state.unsynced > 0 ? `saving ${state.unsynced}…` : "saved";
}

function showProgress(p) {
  if (!p) return;
  document.getElementById("count").textContent = String(p.count);
  document.getElementById("rate").textContent = String(Math.round(p.rate_per_hour));
  document.getElementById("remaining").textContent = String(p.remaining);
}

function buildPanels() {
  const box = document.getElementById("panels");
  for (const panel of PANELS[TASK]) {
    const fig = L2I.el("figure");
    const img = L2I.el("img");
    img.dataset.view = panel.view;
    img.alt = panel.title;
    fig.append(img, L2I.el("figcaption", panel.title));
    box.append(fig);
  }
}

function render() {
  const item = state.current;
  document.getElementById("sample").hidden = !item;
  document.getElementById("empty").hidden = !!item;
  if (!item) return;
  for (const img of document.querySelectorAll("#panels img")) {
    const panel = PANELS[TASK].find((p) => p.view === img.dataset.view);
    img.src = L2I.imgUrl(state.overlay || !panel.alt ? panel.view : panel.alt, item);
  }
  document.getElementById("caption").textContent = item.caption;
  document.getElementById("key").textContent = item.key;
  document.getElementById("split").textContent = item.split;
}

function preload(items) {
  for (const item of items) {
    if (state.preloaded.has(item.key)) continue;
    state.preloaded.set(item.key, PANELS[TASK].map((p) => { const i = new Image(); i.src = L2I.imgUrl(p.view, item); return i; }));
  }
  for (const key of [...state.preloaded.keys()]) {  // keep the cache to what is still ahead
    if (!items.some((i) => i.key === key) && (!state.current || state.current.key !== key)) state.preloaded.delete(key);
  }
}

function merge(items) {
  for (const item of items) {
    const known = state.done.has(item.key) || (state.current && state.current.key === item.key) ||
                  state.queue.some((q) => q.key === item.key);
    if (!known) state.queue.push(item);
  }
  if (!state.current && state.queue.length) { state.current = state.queue.shift(); render(); }
  if (!state.current) render();
  preload(state.queue);
}

function refill(afresh = false) {
  return send(async () => {
    const r = await L2I.api(`/api/tasks/${TASK}/next`, {n: HOLD});
    if (afresh) {  // keep only what the server says we still hold
      state.queue = [];
      if (state.current && !r.items.some((i) => i.key === state.current.key)) state.current = null;
    }
    merge(r.items);
    showProgress(r.progress);
    return r;
  });
}

function advance() {
  state.current = state.queue.shift() || null;
  render();
  preload(state.queue);
  if (state.queue.length < HOLD - 1) refill();
}

function judge(label) {
  const item = state.current;
  if (!item || state.undoing) return;
  state.done.add(item.key);
  document.getElementById("last").textContent = `${label}: ${item.key}`;
  send(async () => {
    try {
      const r = await L2I.api(`/api/tasks/${TASK}/label`, {key: item.key, label});
      showProgress(r.progress);
      return r;
    } catch (e) {
      if (e.status !== 409) throw e;
      document.getElementById("last").textContent = `not saved: ${item.key} went to another annotator meanwhile`;
      refill(true);
      return null;
    }
  });
  advance();
}

function undo() {
  if (state.undoing) return;
  state.undoing = true;
  send(async () => {
    const r = await L2I.api(`/api/tasks/${TASK}/undo`, {});
    if (!r.item) {  // a skipped sample that went to another annotator: only the skip was withdrawn
      document.getElementById("last").textContent = r.message;
      showProgress(r.progress);
      return r;
    }
    if (state.current && state.current.key !== r.item.key) state.queue.unshift(state.current);
    state.queue = state.queue.filter((q) => q.key !== r.item.key);
    state.current = r.item;
    state.done.delete(r.item.key);
    document.getElementById("last").textContent = `undone: ${r.item.key}`;
    render();
    showProgress(r.progress);
    return r;
  }, 1).finally(() => { state.undoing = false; });
}

function toggleOverlay() {
  state.overlay = !state.overlay;
  render();
}

const ACTIONS = {good: () => judge("good"), bad: () => judge("bad"), skip: () => judge("skip"), undo, toggle: toggleOverlay};
const KEYS = {"1": "good", "2": "bad", " ": "skip", "Backspace": "undo", "o": "toggle", "O": "toggle"};

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.target instanceof HTMLInputElement) return;
  const action = KEYS[ev.key];
  if (!action) return;
  ev.preventDefault();
  if (ev.repeat) return;  // holding a key must not label a run of samples
  ACTIONS[action]();
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("title").textContent = TASK === "mask" ? "Mask quality" : "Inpainting quality";
  document.title = `${document.getElementById("title").textContent} · l2i annotate`;
  document.getElementById(`nav-${TASK}`).classList.add("active");
  const guide = document.getElementById("guide");
  guide.append(L2I.el("h2", GUIDE[TASK][0]), L2I.el("p", GUIDE[TASK][1]));
  const list = L2I.el("ul");
  for (const line of GUIDE[TASK].slice(2)) list.append(L2I.el("li", line));
  guide.append(list);
  buildPanels();
  for (const b of document.querySelectorAll("[data-action]")) {
    b.addEventListener("click", (ev) => { ev.currentTarget.blur(); ACTIONS[b.dataset.action](); });
  }
  document.getElementById("check-again").addEventListener("click", () => refill());
  document.addEventListener("keydown", onKey);
  const me = await L2I.me();
  document.getElementById("user").textContent = me.name;
  await refill();
  state.poll = setInterval(() => { if (!state.current && state.unsynced === 0) refill(); }, 30000);
});
