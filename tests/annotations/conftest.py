"""Fixtures: tiny synthetic L2I(U) shards, a pooled labels db, logged-in API clients, a live server."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from annotations import db
from annotations.pool import build_pool
from annotations.queue import Settings
from annotations.server import create_app
from annotations.users import add_user
from l2i_pipeline.core.commit import write_output_shard
from l2i_pipeline.core.sample import Sample

SIZE = 64


def _png(a: np.ndarray) -> bytes:
    return cv2.imencode(".png", a)[1].tobytes()


def make_sample(key: str, unit: str, i: int, ok: bool = True) -> Sample:
    """A coloured disc on a gradient: I, soft m, F, dilated m~, and B with the disc painted over."""
    if not ok:
        return Sample(key, unit, caption=f"rejected {i}", status="rejected", reason="no_salient_object")
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    image = np.stack([xx * 3, yy * 3, np.full_like(xx, 40 + i * 7 % 200)], axis=2).astype(np.uint8)
    cx, cy, r = 20 + i % 24, 24 + (i * 5) % 20, 10 + i % 6
    disc = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8) * 255
    image[disc > 0] = (30 * i % 255, 200, 90)
    mask = cv2.GaussianBlur(disc, (5, 5), 0)
    inpaint = (cv2.dilate(disc, np.ones((7, 7), np.uint8)) > 0).astype(np.uint8) * 255
    fg = np.where(mask[:, :, None] > 25, image, 0).astype(np.uint8)
    bg = image.copy()
    bg[inpaint > 0] = (60, 60, 60)
    caption = f"<b>sample {i}</b> & a <script>alert(1)</script> disc"
    s = Sample(key, unit, caption=caption, meta={"url": f"http://example.invalid/{key}.jpg"})
    s.members = {
        "jpg": cv2.imencode(".jpg", image)[1].tobytes(), "fg.png": _png(fg), "mask.png": _png(mask),
        "inpaint_mask.png": _png(inpaint), "bg.png": _png(bg), "txt": caption.encode(), "json": b"{}",
    }
    return s


def make_shards(out_dir: Path, shards: int = 2, per_shard: int = 12, rejected_every: int = 5) -> list[str]:
    """Writes shards; every `rejected_every`-th sample is rejected. Returns the ok keys."""
    ok_keys = []
    for sh in range(shards):
        name = f"{sh:05d}_0000"
        samples = []
        for j in range(per_shard):
            i = sh * per_shard + j
            ok = i % rejected_every != rejected_every - 1
            key = f"{sh:05d}{j:04d}"
            samples.append(make_sample(key, name, i, ok))
            if ok:
                ok_keys.append(key)
        write_output_shard(out_dir, name, samples, {"durations": {}})
    return ok_keys


@pytest.fixture
def shard_maker():
    """The shard writer itself, for tests that need other shapes (conftest is not importable in importlib mode)."""
    return make_shards


@pytest.fixture
def shards_dir(tmp_path) -> Path:
    d = tmp_path / "l2iu"
    make_shards(d)
    return d


@dataclass
class Env:
    db_path: Path
    samples_dir: Path
    tokens: dict[str, str]


@pytest.fixture
def env(tmp_path, shards_dir) -> Env:
    """A pool of 12 samples (2 test) and users ann1, ann2, ann3 and boss (admin)."""
    path = tmp_path / "labels.sqlite"
    conn = db.connect(path, create=True)
    build_pool(conn, shards_dir, size=12, test=2, seed=0)
    tokens = {name: add_user(conn, name) for name in ("ann1", "ann2", "ann3")}
    tokens["boss"] = add_user(conn, "boss", is_admin=True)
    conn.close()
    return Env(path, shards_dir, tokens)


def login(client: TestClient, token: str) -> str:
    """Logs the client in; returns the CSRF token and sets it as the client's default header."""
    r = client.post("/api/login", json={"token": token})
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf"]
    client.headers["X-CSRF-Token"] = csrf
    return csrf


@pytest.fixture
def do_login():
    return login


@pytest.fixture
def make_client(env):
    """make_client(name, overlap=0.1, **settings) -> a logged-in TestClient of its own (own cookie jar)."""
    clients = []

    def make(name: str | None = None, overlap: float = 0.1, **settings) -> TestClient:
        app = create_app(env.db_path, Settings(overlap=overlap, **settings), allowed_hosts=["testserver"])
        c = TestClient(app)
        c.__enter__()
        clients.append(c)
        if name:
            login(c, env.tokens[name])
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@dataclass
class Live:
    url: str
    env: Env


@pytest.fixture
def live_server(env):
    """The app under uvicorn on 127.0.0.1, on an ephemeral port, in a thread."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(env.db_path, Settings(overlap=0.5))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start within 10 s"
    yield Live(f"http://127.0.0.1:{port}", env)
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
