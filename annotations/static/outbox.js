// Labels on their way to the server. Each is kept in localStorage (this origin only; it survives a reload or a
// crash) from the key press until the server acknowledges it. They are sent one at a time, in order, and
// retried with backoff while the server is unreachable or failing (network error, 5xx, 429). Each carries an
// id made here, so resending one whose response was lost is acknowledged by the server, not counted twice. A
// label the server refuses for good (4xx) is dropped and reported through hooks.refused.
// Each tab stores under its own key (PREFIX + a tab id kept in sessionStorage, so a reload finds it again) and
// adopts, on load, what other tabs of the same user and task left behind; should one of them still be open,
// both send those labels, and their ids make the server store each once.
"use strict";

class Outbox {
  // hooks: changed(), online(), offline(error), refused(op, error)
  constructor(prefix, post, hooks) {
    this.prefix = prefix;
    this.key = prefix + Outbox.tabId();
    this.post = post;
    this.hooks = hooks;
    this.ops = this.load();
    this.save();
    this.sending = false;
    this.failures = 0;
  }

  static tabId() {
    try {
      let id = sessionStorage.getItem("l2i.tab");
      if (!id) { id = Outbox.newId(); sessionStorage.setItem("l2i.tab", id); }
      return id;
    } catch (e) {
      return Outbox.newId();
    }
  }

  load() {
    const ops = [], seen = new Set();
    try {
      const keys = [this.key];
      for (let i = 0; i < localStorage.length; i++) {
        const k = localStorage.key(i);
        if (k && k.startsWith(this.prefix) && k !== this.key) keys.push(k);
      }
      for (const k of keys) {
        let stored = [];
        try { stored = JSON.parse(localStorage.getItem(k) || "[]"); } catch (e) { stored = []; }
        for (const op of Array.isArray(stored) ? stored : []) {
          if (op && typeof op.key === "string" && op.id && !seen.has(op.id)) { seen.add(op.id); ops.push(op); }
        }
        if (k !== this.key) localStorage.removeItem(k);  // adopted: kept under this tab's key from now on
      }
    } catch (e) { /* storage blocked: nothing to adopt */ }
    return ops;
  }

  save() {
    try {
      if (this.ops.length) localStorage.setItem(this.key, JSON.stringify(this.ops));
      else localStorage.removeItem(this.key);
    } catch (e) { /* storage full or blocked: the labels are still held in this page */ }
  }

  get size() { return this.ops.length; }

  add(op) {
    this.ops.push({...op, id: Outbox.newId()});
    this.save();
    this.hooks.changed();
    this.flush();
  }

  takeBackLast() {
    // The newest label, if no request for it has left the page yet (the first one may be on its way).
    if (this.ops.length <= (this.sending ? 1 : 0)) return null;
    const op = this.ops.pop();
    this.save();
    this.hooks.changed();
    return op;
  }

  async flush() {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.ops.length) {
        const op = this.ops[0];
        try {
          await this.post(op);
          this.failures = 0;
          this.hooks.online();
        } catch (e) {
          if (e.status === 401) return;  // off to the login page; the labels stay stored for after it
          if (Outbox.retriable(e)) {
            this.failures += 1;
            this.hooks.offline(e);
            await Outbox.sleep(Outbox.backoff(this.failures));
            continue;
          }
          this.hooks.refused(op, e);
        }
        this.ops.shift();
        this.save();
        this.hooks.changed();
      }
    } finally {
      this.sending = false;
      this.hooks.changed();
    }
  }

  static retriable(e) { return e.status === undefined || e.status >= 500 || e.status === 429; }

  static backoff(failures) { return Math.min(5000, 250 * 2 ** Math.min(failures, 5)); }

  static sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

  static newId() {  // crypto.getRandomValues works on plain http too (randomUUID needs a secure context)
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
}
