// Shared by the logged-in pages: JSON fetch with the CSRF header, and DOM helpers that only ever set text.
"use strict";

const L2I = {
  csrf: null,

  async api(path, body) {
    const init = {credentials: "same-origin", headers: {}};
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = L2I.csrf || "";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    if (resp.status === 401) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname));
      throw new Error("not logged in");
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      const err = new Error((data && typeof data.detail === "string") ? data.detail : `HTTP ${resp.status}`);
      err.status = resp.status;
      throw err;
    }
    return data;
  },

  async me() {
    const me = await L2I.api("/api/me");
    L2I.csrf = me.csrf;
    document.getElementById("nav-stats").hidden = !me.is_admin;
    document.getElementById("logout").addEventListener("click", async () => {
      try { await L2I.api("/api/logout", {}); } finally { location.assign("/login"); }
    });
    return me;
  },

  el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  },

  showError(message) {
    const box = document.getElementById("error");
    box.textContent = message || "";
    box.hidden = !message;
  },
};
