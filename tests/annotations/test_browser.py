"""A real browser (headless Chromium via Playwright) logs in, labels with the hotkeys, undoes one label; the
stored events and the export match. Skipped, with the reason, where Chromium or Playwright is missing
(CI installs Chromium with .ci/install_browser.sh). Set L2I_SCREENSHOT_DIR to keep page screenshots.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from annotations import db
from l2i_pipeline.cli import main

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="Python package playwright is not installed")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (Debian package chromium; run .ci/install_browser.sh)",
                allow_module_level=True)


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def open_page(browser, problems: list):
    page = browser.new_context(viewport={"width": 1500, "height": 900}).new_page()
    page.set_default_timeout(15000)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    return page


def shown_key(page) -> str:
    page.wait_for_function("() => document.getElementById('key').textContent !== ''")
    return page.text_content("#key")


def press_and_wait(page, key: str, before: str) -> str:
    """Press a hotkey; wait until the page shows another sample; return its key."""
    page.keyboard.press(key)
    page.wait_for_function("k => document.getElementById('key').textContent !== k", arg=before)
    return page.text_content("#key")


def wait_saved(page) -> None:
    page.wait_for_function("() => document.getElementById('sync').textContent === 'saved'")


def images_loaded(page) -> bool:
    return page.evaluate("""() => [...document.querySelectorAll('#panels img')]
        .every(i => i.complete && i.naturalWidth > 0)""")


def screenshot(page, name: str) -> None:
    out = os.environ.get("L2I_SCREENSHOT_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(out) / name), full_page=True)


def test_label_undo_and_export_in_a_real_browser(browser, live_server, tmp_path):
    env, problems = live_server.env, []
    page = open_page(browser, problems)
    page.goto(f"{live_server.url}/login#token={env.tokens['ann1']}")
    page.wait_for_url("**/annotate/mask")
    assert "token" not in page.url

    k1 = shown_key(page)
    page.wait_for_function("() => [...document.querySelectorAll('#panels img')].every(i => i.complete)")
    assert images_loaded(page)
    caption = page.text_content("#caption")
    assert "<script>alert(1)</script>" in caption and page.query_selector("#caption *") is None  # text, not HTML
    assert page.text_content("#user") == "ann1"
    screenshot(page, "annotate_mask.png")

    k2 = press_and_wait(page, "1", k1)  # k1 good
    k3 = press_and_wait(page, "2", k2)  # k2 bad
    k4 = press_and_wait(page, "Space", k3)  # k3 skipped
    wait_saved(page)  # the skip reached the server, so the undo goes there too (unsent, it is taken back here)
    assert press_and_wait(page, "Backspace", k4) == k3  # undo the skip: k3 is back
    assert press_and_wait(page, "2", k3) == k4  # k3 bad
    k5 = press_and_wait(page, "1", k4)  # k4 good
    wait_saved(page)
    assert len({k1, k2, k3, k4, k5}) == 5
    assert page.text_content("#count") == "4"

    page.goto(f"{live_server.url}/annotate/inpaint")
    i1 = shown_key(page)
    page.wait_for_function("() => [...document.querySelectorAll('#panels img')].every(i => i.complete)")
    assert images_loaded(page)
    screenshot(page, "annotate_inpaint.png")
    i2 = press_and_wait(page, "2", i1)
    page.keyboard.press("o")  # overlay toggle shows the plain B
    page.wait_for_function("() => document.querySelector('img[data-view=bg_outline]').src.includes('/img/bg?')")
    press_and_wait(page, "1", i2)
    wait_saved(page)

    conn = db.connect(env.db_path)
    events = [tuple(r) for r in conn.execute(
        "SELECT e.task, s.key, e.value FROM events e JOIN samples s ON s.id = e.sample_id ORDER BY e.id")]
    assert events == [("mask", k1, "good"), ("mask", k2, "bad"), ("mask", k3, "skip"), ("mask", k3, "undo"),
                      ("mask", k3, "bad"), ("mask", k4, "good"), ("inpaint", i1, "bad"), ("inpaint", i2, "good")]

    out = tmp_path / "labels.jsonl"
    assert main(["annotate", "export", "--db", str(env.db_path), "--out", str(out)]) == 0
    rows = {(r["task"], r["key"]): (r["label"], r["annotator"]) for r in map(json.loads, out.read_text().splitlines())}
    assert rows == {("mask", k1): ("good", "ann1"), ("mask", k2): ("bad", "ann1"), ("mask", k3): ("bad", "ann1"),
                    ("mask", k4): ("good", "ann1"), ("inpaint", i1): ("bad", "ann1"),
                    ("inpaint", i2): ("good", "ann1")}

    admin = open_page(browser, problems)
    admin.goto(f"{live_server.url}/login#token={env.tokens['boss']}")
    admin.wait_for_url("**/annotate/mask")
    admin.goto(f"{live_server.url}/stats")
    admin.wait_for_selector("section.task[data-task=inpaint] table")
    assert "ann1" in admin.text_content("section.task[data-task=mask]")
    screenshot(admin, "annotate_stats.png")
    assert problems == []


EVIL_PAGE = """<!doctype html><html><body>
<form id="f" method="post" enctype="text/plain" target="sink" action="TARGET/api/tasks/mask/next">
<input name='{"n": 20, "x": "' value='"}'></form><iframe name="sink"></iframe>
<script>
const T = "TARGET";
Promise.allSettled([
  fetch(T + "/api/tasks/mask/next", {method: "POST", mode: "no-cors", credentials: "include",
                                     headers: {"Content-Type": "text/plain"}, body: '{"n": 20}'}),
  fetch(T + "/api/tasks/mask/next", {method: "POST", credentials: "include",
                                     headers: {"Content-Type": "application/json"}, body: '{"n": 20}'}),
  fetch(T + "/api/tasks/mask/next?n=20", {mode: "no-cors", credentials: "include"}),
]).then(() => { document.getElementById("f").submit(); document.title = "sent"; });
</script></body></html>"""


@pytest.fixture
def evil_site(live_server):
    """A page on another localhost port (same site, other origin) that tries to take samples for its visitor."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = EVIL_PAGE.replace("TARGET", live_server.url).encode()
    cookies: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 -- http.server's naming
            cookies.append(self.headers.get("Cookie") or "")
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", cookies
    server.shutdown()
    server.server_close()


def test_a_page_on_another_port_cannot_take_samples(browser, live_server, evil_site):
    import httpx

    env, (evil_url, evil_got) = live_server.env, evil_site
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{live_server.url}/login#token={env.tokens['ann1']}")
    page.wait_for_url("**/annotate/mask")  # the visitor is logged in: their session cookie is in this browser
    shown_key(page)
    conn = db.connect(env.db_path)
    with db.write(conn):
        conn.execute("DELETE FROM leases")
    seen: list = []
    page.on("response", lambda resp: seen.append((resp.request.method, resp.request.resource_type, resp.status))
            if "/api/tasks/mask/next" in resp.url else None)
    page.goto(evil_url)
    page.wait_for_function("() => document.title === 'sent'")
    for _ in range(100):  # until the form post's response is in
        if any(t == "document" for _, t, _ in seen):
            break
        page.wait_for_timeout(100)
    # the old GET is gone (405); the no-cors fetch and the form post reach the server and are refused
    assert {(m, t) for m, t, _ in seen} >= {("GET", "fetch"), ("POST", "fetch"), ("POST", "document")}, seen
    assert all(400 <= status < 500 for *_, status in seen), seen
    assert conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0  # nothing hoarded
    # cookies ignore ports: the other port's server received the session cookie. Alone, it is no session.
    stolen = next(c for c in evil_got if "l2i_session=" in c)
    with httpx.Client(base_url=live_server.url, headers={"Cookie": stolen}) as thief:
        me = thief.get("/api/me")
        assert me.status_code == 401 and "csrf" not in me.text.lower()
        assert thief.post("/api/tasks/mask/next", json={"n": 20}).status_code == 401
        assert thief.post("/api/tasks/mask/label", json={"key": "000000000", "label": "good"}).status_code == 401
    assert conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
    # the annotator's own page still takes samples (a same-origin POST with the session token)
    page.goto(f"{live_server.url}/annotate/mask")
    shown_key(page)
    assert conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] > 0
    context.close()


def test_a_label_refused_with_409_is_dropped_and_the_page_refills(browser, live_server):
    from annotations.queue import Settings, next_items

    env, problems = live_server.env, []
    page = open_page(browser, problems)
    page.goto(f"{live_server.url}/login#token={env.tokens['ann1']}")
    page.wait_for_url("**/annotate/mask")
    k1 = shown_key(page)
    wait_saved(page)
    conn = db.connect(env.db_path)
    with db.write(conn):  # ann1 stepped away: the leases lapse, and ann2 and ann3 take every sample
        conn.execute("UPDATE leases SET expires = 0")
    users = dict(conn.execute("SELECT name, id FROM users").fetchall())
    for name in ("ann2", "ann3"):
        next_items(conn, users[name], "mask", 12, Settings(overlap=0.5))
    page.keyboard.press("1")
    page.wait_for_function("() => document.getElementById('last').textContent.startsWith('not saved')")
    assert k1 in page.text_content("#last")
    page.wait_for_selector("#empty", state="visible")  # nothing left for ann1; the stale samples are gone
    wait_saved(page)
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
    assert problems == ["console error: Failed to load resource: the server responded with a status of 409 "
                        "(Conflict)"]  # the browser logs the refused request itself; the page raised nothing


def test_labels_made_while_the_server_is_down_are_kept_and_sent_once(browser, live_server):
    """Issue 25 #11: labels survive an outage and a reload, the header counts them, the banner clears, closing
    the tab asks first, and a resend after a lost response is not a second label."""
    env, problems = live_server.env, []
    page = open_page(browser, problems)
    dialogs: list = []
    page.on("dialog", lambda d: (dialogs.append(d.type), d.accept()))
    page.goto(f"{live_server.url}/login#token={env.tokens['ann1']}")
    page.wait_for_url("**/annotate/mask")
    k1 = shown_key(page)
    wait_saved(page)
    page.route("**/api/**", lambda route: route.abort())  # the server is down
    k2 = press_and_wait(page, "1", k1)
    k3 = press_and_wait(page, "2", k2)
    page.wait_for_function("() => document.getElementById('sync').textContent === '2 not saved yet'")
    page.wait_for_selector("#error", state="visible")
    assert "2 labels kept in this browser" in page.text_content("#error")
    assert press_and_wait(page, "Backspace", k3) == k2  # not sent yet: taken back in the page
    assert press_and_wait(page, "1", k2) == k3
    page.reload()  # the page asks first (labels not saved), then reloads: they are still there
    assert "beforeunload" in dialogs
    page.wait_for_function("() => document.getElementById('sync').textContent === '2 not saved yet'")
    stored = page.evaluate("""() => Object.keys(localStorage).filter(k => k.startsWith('l2i.pending.ann1.mask.'))
                                    .map(k => JSON.parse(localStorage.getItem(k)))""")
    assert [[(op["key"], op["label"]) for op in ops] for ops in stored] == [[(k1, "good"), (k2, "good")]]
    # a second tab of the same task adopts them (as it would after this tab crashed); both send, one label each
    other = page.context.new_page()
    other.route("**/api/**", lambda route: route.abort())
    other.goto(f"{live_server.url}/annotate/mask")
    other.wait_for_function("() => document.getElementById('sync').textContent === '2 not saved yet'")
    conn = db.connect(env.db_path)
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0

    lost: list = []

    def lose_first_response(route):  # the first label reaches the server, but its response is lost
        if not lost:
            lost.append(route.fetch().status)
            route.abort()
        else:
            route.continue_()

    page.unroute("**/api/**")
    page.route("**/api/tasks/mask/label", lose_first_response)
    wait_saved(page)
    other.unroute("**/api/**")
    wait_saved(other)
    other.close()
    page.wait_for_selector("#error", state="hidden")  # the banner clears once the server answers
    assert lost == [200]
    events = [tuple(r) for r in conn.execute(
        "SELECT s.key, e.value FROM events e JOIN samples s ON s.id = e.sample_id ORDER BY e.id")]
    assert events == [(k1, "good"), (k2, "good")]  # each once, in order
    assert page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('l2i.pending'))") == []
    assert shown_key(page) not in (k1, k2)
    assert all("Failed to load resource" in p or "ERR_FAILED" in p for p in problems), problems


def test_login_link_pasted_into_a_login_tab_and_a_phone_layout(browser, live_server, tmp_path):
    """Issue 25 #14: a login link pasted into a tab already on /login logs in (only the fragment changes, no
    reload) and leaves the address bar; on a 390 px phone the panels stack, each nearly the screen's width."""
    env, problems = live_server.env, []
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(15000)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(f"{live_server.url}/login")
    page.goto(f"{live_server.url}/login#token={env.tokens['ann1']}")  # same document: a fragment navigation
    page.wait_for_url("**/annotate/mask")
    assert "token" not in page.url
    shown_key(page)
    page.wait_for_function("() => [...document.querySelectorAll('#panels img')].every(i => i.complete)")
    boxes = [page.eval_on_selector(f"#panels figure:nth-child({i})", "e => e.getBoundingClientRect().toJSON()")
             for i in (1, 2, 3)]
    assert all(b["width"] > 330 for b in boxes), boxes  # not three 111 px columns
    assert boxes[0]["bottom"] <= boxes[1]["top"] and boxes[1]["bottom"] <= boxes[2]["top"], boxes  # stacked
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # nothing wider than the screen
    out = Path(os.environ.get("L2I_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / "annotate_mask_390px.png"), full_page=True)
    # the token field takes a whole pasted login link too
    page.evaluate("() => localStorage.clear()")
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/login")
    page.fill("#token", f"{live_server.url}/login#token={env.tokens['ann2']}")
    page.click("button[type=submit]")
    page.wait_for_url("**/annotate/mask")
    page.wait_for_function("() => document.getElementById('user').textContent === 'ann2'")
    assert problems == []
    context.close()
