// Login: the token comes from the URL fragment (never sent to the server in a URL, so never in logs)
// or from the form; it is exchanged for a session cookie plus a session token, which only this response
// carries and which the pages keep in localStorage (scoped to this origin, port included).
"use strict";

async function login(token) {
  const msg = document.getElementById("message");
  msg.textContent = "Logging in…";
  let resp;
  try {
    resp = await fetch("/api/login", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({token}),
      credentials: "same-origin",
    });
  } catch (e) {
    msg.textContent = "The server cannot be reached.";
    return;
  }
  if (!resp.ok) {
    let detail = "";
    try { detail = (await resp.json()).detail || ""; } catch (e) { detail = ""; }
    msg.textContent = resp.status === 401 ? "Unknown token." : `Login failed (${resp.status}${detail ? ": " + detail : ""}).`;
    return;
  }
  try {
    const session = await resp.json();
    localStorage.setItem("l2i.session-token", session.csrf);
    localStorage.setItem("l2i.user", session.name);
  } catch (e) {
    msg.textContent = "This browser blocks site storage for this page; allow it to log in.";
    return;
  }
  const next = new URLSearchParams(location.search).get("next");
  location.replace(next === "/annotate/inpaint" || next === "/stats" ? next : "/annotate/mask");
}

function tokenFrom(text) {
  // A bare token, or a whole login link (…/login#token=…) pasted into the field.
  const hash = text.indexOf("#");
  return hash >= 0 ? (new URLSearchParams(text.slice(hash + 1)).get("token") || "") : text;
}

function fromAddressBar() {
  // The token in the fragment: on load, and when a login link is pasted into a tab already on /login (only
  // the fragment changes then, so the page is not reloaded). Either way it leaves the address bar at once.
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  if (token) login(token);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    login(tokenFrom(document.getElementById("token").value.trim()));
  });
  window.addEventListener("hashchange", fromAddressBar);
  fromAddressBar();
});
