"""Issue 25 item 15: a 1-CPU node with an actor pool makes progress (the tasks that feed the actors ask for
what is left beside them), an impossible request is refused up front, and a stalled job says so."""
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.core.rayutil import RESERVED_CPUS, Watchdog, feeder_cpus

ROOT = Path(__file__).resolve().parents[2]


def test_feeding_tasks_fit_beside_the_actors_on_a_small_node():
    assert feeder_cpus([16.0], 0.25, 1) == 1.0  # room: a whole CPU, as before
    one = feeder_cpus([1.0], 0.1, 1)  # `--num-cpus 1`, device actor on the CPU (0.1)
    assert 0 < one and 0.1 + one + RESERVED_CPUS <= 1.0
    gpu = feeder_cpus([1.0], 0.25, 1)  # a GPU node with one CPU
    assert 0.25 + gpu + RESERVED_CPUS <= 1.0
    two_kinds = feeder_cpus([1.0], kinds=2)  # CPU backends only: a read and a stage task at once
    assert 2 * two_kinds + RESERVED_CPUS <= 1.0
    assert feeder_cpus([1.0, 1.0], 0.1, 2) == one  # one actor per node
    with pytest.raises(ConfigError, match="give fewer actors or more CPUs"):
        feeder_cpus([1.0], 0.1, 8)
    with pytest.raises(ConfigError, match="no node with CPUs"):
        feeder_cpus([], 0.1, 1)


def test_the_watchdog_names_what_a_stalled_job_waits_for(caplog):
    with caplog.at_level(logging.WARNING, logger="l2i_pipeline.core.rayutil"):
        with Watchdog(lambda: "3 of 4 shards waiting for a CPU", period=0.2) as dog:
            time.sleep(0.7)
            dog.tick()
    lines = [r.getMessage() for r in caplog.records]
    assert lines and all(m.startswith("no progress for ") and m.endswith("3 of 4 shards waiting for a CPU")
                         for m in lines)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="l2i_pipeline.core.rayutil"):
        with Watchdog(lambda: "never", period=5) as dog:
            dog.tick()
    assert not caplog.records  # progress (or a short job): nothing said


def _cli(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.run([sys.executable, "-m", "l2i_pipeline.cli", *args], env=env, cwd=ROOT, timeout=timeout,
                          capture_output=True, text=True)


def test_synthesize_on_one_cpu_with_a_device_actor_completes(raw_dir, tmp_path):
    """The simulated-GPU path (a backend with uses_gpu, as ICON/SD2) on `--num-cpus 1`: it used to hang."""
    out = tmp_path / "l2i"
    r = _cli(["synthesize", "--input", str(raw_dir), "--output", str(out), "--num-cpus", "1",
              "--set", "resolution=96", "--set", "output_shard_size=4",
              "--set", "inpaint.backend=toybackends:ThreadSafeCountingInpainter"], timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "shards written: 4" in r.stdout and "samples: 12" in r.stdout
