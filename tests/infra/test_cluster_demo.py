"""`make cluster-demo` end to end: two Ray nodes on this machine, `l2i demo` through `ray job submit`,
outputs checked, both nodes stopped, nothing of it left running. Minutes on 2 cores: slow."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cluster_demo(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "infra" / "cluster_demo.py"), "--workdir", str(tmp_path / "cd"),
                             "--timeout", "600"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        out, _ = proc.communicate(timeout=840)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the demo stops its nodes on SIGTERM
        out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out[-4000:]
    assert "2 node(s) alive: demo_head, demo_worker" in out
    assert re.search(r"job l2i-demo-\d+: SUCCEEDED", out)
    assert "all checks passed" in out
    assert "shards written" in (tmp_path / "cd" / "job.log").read_text()  # the summary, via `ray job logs`
    temp_dir = re.search(r"Ray temp dir (\S+)", out).group(1)
    still = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if temp_dir in (entry / "cmdline").read_bytes().decode("utf-8", "replace"):
                    still.append(entry.name)
            except OSError:
                pass
    assert not still, f"processes of the demo cluster still running: {still}"


def test_status_parsing_and_ports():
    sys.path.insert(0, str(ROOT / "infra"))
    import cluster_demo

    assert cluster_demo.parse_status("\x1b[32mJob 'l2i-demo-1' succeeded\x1b[39m") == "SUCCEEDED"
    assert cluster_demo.parse_status("Job 'l2i-demo-1' failed\nStatus message: boom") == "FAILED"
    assert cluster_demo.parse_status("Job 'l2i-demo-1' was stopped") == "STOPPED"
    assert cluster_demo.parse_status("Status for job 'l2i-demo-1': RUNNING") == "RUNNING"
    assert cluster_demo.parse_status("connection refused") is None
    ports = cluster_demo.free_ports(15)
    assert len(set(ports)) == 15
