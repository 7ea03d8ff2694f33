"""A test server in its own process on 127.0.0.1: a free port, waiting until it answers, stopping it.

Shared by tests/s3server.py (moto) and tests/emulators.py (fake-gcs-server, Azurite).
"""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_answering(proc: subprocess.Popen, url: str, what: str, tries: int = 300) -> None:
    """Return once `url` answers (any HTTP status counts); stop `proc` and raise if it never does."""
    for _ in range(tries):
        if proc.poll() is not None:
            break
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:  # it answers (403 with authentication on, 400 for a bare path)
            return
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"{what} did not start")


def stop(proc: subprocess.Popen) -> None:
    """Terminate, then kill if it has not exited within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ServerProcess:
    """Base of the test servers: `self.proc` is the server's process; `stop()` ends it."""

    proc: subprocess.Popen

    def stop(self) -> None:
        stop(self.proc)
