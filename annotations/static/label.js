// The labeling page. The annotator never waits for the server: a key press advances at once and the label
// goes into the outbox (outbox.js), which keeps it in this browser until the server acknowledges it, across
// reloads and outages; the header counts what is not saved yet, and closing the tab then asks first. The next
// samples' images are prefetched. Taking samples is a POST with the session token (it reserves them). A label
// the server refuses (409: the lease lapsed and the sample went to someone else) is dropped, named, and the
// held samples are fetched afresh. Undo takes back a label that has not left the page yet; otherwise it asks
// the server, once the outbox is empty.
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
  current: null, queue: [], done: new Set(), overlay: true, undoing: false, undoId: null, outbox: null,
  refilling: Promise.resolve(), refillQueued: false, afresh: false, preloaded: new Map(), poll: null, trouble: null,
};

function showSync() {
  const n = state.outbox ? state.outbox.size : 0;
  document.getElementById("sync").textContent = n > 0 ? `${n} not saved yet` : "saved";
  const e = state.trouble;
  if (!e) return;
  const what = e.status ? `the server failed (${e.message})` : `the server cannot be reached (${e.message})`;
  const kept = n ? ` ${n} label${n === 1 ? "" : "s"} kept in this browser;` : "";
  L2I.showError(`Not saved yet: ${what}.${kept} retrying…`);
}

function showLast(text) {
  document.getElementById("last").textContent = text;
}

function serverTrouble(e) {  // the banner stays, with the count kept up to date, until the server answers
  state.trouble = e;
  showSync();
}

function serverBack() {
  state.trouble = null;
  L2I.showError("");
}

async function untilReachable(fn, attempts = Infinity) {
  // Retry network errors and 5xx with backoff (the banner says so); other errors go to the caller.
  for (let i = 1; ; i++) {
    try {
      const r = await fn();
      serverBack();
      return r;
    } catch (e) {
      if (!Outbox.retriable(e) || e.status === 401 || i >= attempts) throw e;
      serverTrouble(e);
      await Outbox.sleep(Outbox.backoff(i));
    }
  }
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
  // One refill at a time, and at most one waiting behind it.
  state.afresh = state.afresh || afresh;
  if (state.refillQueued) return state.refilling;
  state.refillQueued = true;
  state.refilling = state.refilling.then(async () => {
    state.refillQueued = false;
    const fresh = state.afresh;
    state.afresh = false;
    try {
      const r = await untilReachable(() => L2I.api(`/api/tasks/${TASK}/next`, {n: HOLD}));
      if (fresh) {  // keep only what the server says we still hold
        state.queue = [];
        if (state.current && !r.items.some((i) => i.key === state.current.key)) state.current = null;
      }
      merge(r.items);
      showProgress(r.progress);
    } catch (e) {
      if (e.status !== 401) showLast(`could not fetch samples: ${e.message}`);
    }
  });
  return state.refilling;
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
  showLast(`${label}: ${item.key}`);
  state.outbox.add({key: item.key, label, item});
  advance();
}

function postLabel(op) {
  return L2I.api(`/api/tasks/${TASK}/label`, {key: op.key, label: op.label, id: op.id})
    .then((r) => showProgress(r.progress));
}

function refused(op, e) {
  if (e.status === 409) {
    showLast(`not saved: ${op.key} went to another annotator meanwhile`);
    refill(true);
  } else {
    showLast(`not saved: ${op.key} (${e.message})`);
  }
}

function bringBack(item) {
  if (state.current && state.current.key !== item.key) state.queue.unshift(state.current);
  state.queue = state.queue.filter((q) => q.key !== item.key);
  state.current = item;
  state.done.delete(item.key);
  render();
}

async function undo() {
  if (state.undoing) return;
  const op = state.outbox.takeBackLast();
  if (op) {  // never left the page: nothing to tell the server
    bringBack(op.item);
    showLast(`undone: ${op.key}`);
    return;
  }
  if (state.outbox.size) {
    showLast("the last label is being saved; undo once the header says saved");
    return;
  }
  state.undoing = true;
  // An undo whose answer never came keeps its id for the next press: resent, it is still one undo.
  state.undoId = state.undoId || Outbox.newId();
  try {
    const r = await untilReachable(() => L2I.api(`/api/tasks/${TASK}/undo`, {id: state.undoId}), 4);
    state.undoId = null;
    showProgress(r.progress);
    if (!r.item) {  // a skipped sample that went to another annotator: only the skip was withdrawn
      showLast(r.message);
      return;
    }
    bringBack(r.item);
    showLast(`undone: ${r.item.key}`);
  } catch (e) {
    if (!Outbox.retriable(e)) state.undoId = null;  // refused (say, nothing to undo): the next press is new
    if (e.status !== 401) showLast(`cannot undo: ${e.message}`);
  } finally {
    state.undoing = false;
  }
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
  state.outbox = new Outbox(`l2i.pending.${L2I.userName()}.${TASK}.`, postLabel, {
    changed: showSync, online: serverBack, offline: serverTrouble, refused,
  });
  for (const op of state.outbox.ops) state.done.add(op.key);  // kept from before a reload: not shown again
  showSync();
  state.outbox.flush();
  window.addEventListener("beforeunload", (ev) => {
    if (state.outbox.size) { ev.preventDefault(); ev.returnValue = ""; }  // labels not saved yet: ask first
  });
  const me = await untilReachable(() => L2I.me());
  document.getElementById("user").textContent = me.name;
  await refill();
  state.poll = setInterval(() => { if (!state.current && !state.outbox.size) refill(); }, 30000);
});
