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

document.addEventListener("DOMContentLoaded", () => {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  history.replaceState(null, "", location.pathname + location.search);
  document.getElementById("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    login(document.getElementById("token").value.trim());
  });
  if (token) login(token);
});
