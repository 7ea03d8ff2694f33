// Shared by the logged-in pages: JSON fetch with the session token, and DOM helpers that only ever set text.
// The session token comes from the login response only and lives in localStorage, which is scoped to this
// origin (port included): the session cookie alone, which a server on another port also receives, is no session.
"use strict";

const L2I = {
  TOKEN_KEY: "l2i.session-token",

  token() {
    try { return localStorage.getItem(L2I.TOKEN_KEY) || ""; } catch (e) { return ""; }
  },

  userName() {  // who logged in last in this browser: whose unsaved labels this page may send
    try { return localStorage.getItem("l2i.user") || ""; } catch (e) { return ""; }
  },

  forget() {
    try { localStorage.removeItem(L2I.TOKEN_KEY); } catch (e) { /* storage blocked: nothing kept */ }
  },

  async api(path, body) {
    const init = {credentials: "same-origin", headers: {"X-CSRF-Token": L2I.token()}};
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    if (resp.status === 401) {
      L2I.forget();
      location.assign("/login?next=" + encodeURIComponent(location.pathname));
      const err = new Error("not logged in");
      err.status = 401;
      throw err;
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
    document.getElementById("nav-stats").hidden = !me.is_admin;
    document.getElementById("logout").addEventListener("click", async () => {
      try { await L2I.api("/api/logout", {}); } finally { L2I.forget(); location.assign("/login"); }
    });
    return me;
  },

  imgUrl(view, item) {  // images need the signature the server made with this session's token
    return `/img/${view}?key=${encodeURIComponent(item.key)}&sig=${encodeURIComponent(item.sig)}`;
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
