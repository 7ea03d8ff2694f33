"""`make cluster-demo`: a two-node Ray cluster on this machine, the demo job sent with `ray job submit`.

Starts a head and a second node on 127.0.0.1 (each its own `ray start --block`, distinct ports, its own
CPUs and a custom resource; Ray reports the host's own address for 127.0.0.1, and token authentication
uses a token made for this cluster), submits `l2i demo` through Ray's job submission API with
infra/runtime_env.yaml and this checkout as the working dir, follows `ray job status` to the end, reads
`ray job logs`, checks the output shards, then stops both nodes by signalling only the two `ray start`
processes it launched (each takes its Ray processes down with it) - never `ray stop`, which would end
every Ray on the machine. Prints one line per step; exit code 0 only if every check passed.

    python infra/cluster_demo.py [--workdir cluster_demo_out] [--cpus-per-node 1]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (held open together so none repeats)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class LocalCluster:
    """A head and one worker node, each a `ray start --block` child of this process."""

    MAX_NODES = 4

    def __init__(self, workdir: Path, cpus_per_node: int) -> None:
        self.workdir, self.cpus = workdir, cpus_per_node
        self.temp_dir = tempfile.mkdtemp(prefix="l2icd_", dir="/tmp")  # short: Ray puts sockets in it
        self.procs: list[subprocess.Popen] = []
        self.killed: set[int] = set()  # pids of nodes killed on purpose (`kill_node`)
        (gcs, dash, client, *self.node_ports) = free_ports(3 + self.MAX_NODES * 6)
        self.gcs_address, self.dashboard = f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dash}"
        self.head_ports = {"--port": gcs, "--dashboard-port": dash, "--ray-client-server-port": client}
        bindir = str(Path(sys.executable).parent)  # `python` in the job is this venv's
        token = Path(self.temp_dir) / "auth_token"  # this cluster's own token, not the shared ~/.ray one
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}", "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (set by the test suite for in-process clusters) makes `ray start
        # --address` refuse to join; these nodes are pinned to 127.0.0.1 by --node-ip-address instead
        for var in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
            self.env.pop(var, None)

    def _node_args(self, i: int, gpus: int = 0, cpus: int | None = None) -> list[str]:
        p = self.node_ports[6 * i: 6 * i + 6]
        return ["--node-ip-address", "127.0.0.1", "--node-manager-port", str(p[0]),
                "--object-manager-port", str(p[1]), "--metrics-export-port", str(p[2]),
                "--dashboard-agent-listen-port", str(p[3]), "--dashboard-agent-grpc-port", str(p[4]),
                "--runtime-env-agent-port", str(p[5]),
                "--min-worker-port", str(20000 + 2000 * i), "--max-worker-port", str(21999 + 2000 * i),
                "--num-cpus", str(self.cpus if cpus is None else cpus), "--num-gpus", str(gpus),
                "--object-store-memory", str(200 * 2**20),
                "--temp-dir", self.temp_dir, "--disable-usage-stats", "--block"]

    def _start(self, name: str, args: list[str], env: dict | None = None) -> None:
        log = open(self.workdir / f"ray_{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs.append(subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", *args],
                                           stdout=log, stderr=subprocess.STDOUT, env={**self.env, **(env or {})},
                                           start_new_session=True))
        print(f"[cluster-demo] started {name} node (pid {self.procs[-1].pid}), log {log.name}", flush=True)

    def start(self, worker: bool = True, cpus: int | None = None, env: dict | None = None) -> None:
        """The head (`cpus`, default cpus_per_node; `env` added to its environment, and so to its workers'),
        then (`worker`) a second node; each waited for until Ray lists it alive."""
        print(f"[cluster-demo] Ray temp dir {self.temp_dir}", flush=True)
        head = ["--head", "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                "--resources", json.dumps({"demo_head": 1})]
        for flag, port in self.head_ports.items():
            head += [flag, str(port)]
        self._start("head", head + self._node_args(0, cpus=cpus), env)
        self.wait_for_nodes(1)
        if worker:
            self.add_node("worker", {"demo_worker": 1})

    def add_node(self, name: str, resources: dict, gpus: int = 0, cpus: int | None = None,
                 env: dict | None = None) -> None:
        """Another node joining the running cluster, declaring `gpus` GPUs (Ray believes it: on a CPU machine
        that stands in for a GPU node an autoscaler brings up), `cpus` and custom `resources`; `env` is added
        to its environment (its own working dirs, say)."""
        i = len(self.procs)
        if i >= self.MAX_NODES:
            raise RuntimeError(f"at most {self.MAX_NODES} nodes")
        self._start(name, ["--address", self.gcs_address, "--resources", json.dumps(resources)]
                    + self._node_args(i, gpus, cpus), env)
        self.wait_for_nodes(i + 1 - len(self.killed))

    def kill_node(self, i: int) -> None:
        """kill -9 of node `i` (its `ray start` and every Ray process it started: one process group), as a
        lost machine; the cluster goes on without it."""
        pid = self.procs[i].pid
        self.killed.add(pid)
        os.killpg(pid, signal.SIGKILL)
        self.procs[i].wait()

    def ray(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        r = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *args], env=self.env, text=True,
                           capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"ray {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
        return r.stdout + r.stderr

    def wait_for_nodes(self, n: int, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for p in self.procs:
                if p.pid not in self.killed and p.poll() is not None:
                    raise RuntimeError(f"`ray start` (pid {p.pid}) exited with {p.returncode}; see {self.workdir}")
            out = self.ray("list", "nodes", "--address", self.dashboard, "--format", "json", check=False)
            try:
                alive = [x for x in json.loads(out[out.index("["):]) if x.get("state") == "ALIVE"]
            except ValueError:
                alive = []
            if len(alive) >= n:
                print(f"[cluster-demo] {len(alive)} node(s) alive: "
                      + ", ".join(sorted(k for x in alive for k in x.get("resources_total", {})
                                         if k.startswith("demo_"))), flush=True)
                return
            time.sleep(2)
        raise RuntimeError(f"fewer than {n} Ray nodes alive after {timeout:.0f} s")

    def stop(self) -> None:
        """SIGTERM each `ray start --block` we launched (worker first): it drains and ends the Ray processes it
        started. Then anything left in those two process groups, or naming our temp dir, is killed: all of it
        was started by this demo, and nothing else is touched."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            print(f"[cluster-demo] stopped node pid {p.pid} (exit {p.returncode})", flush=True)
        left = sorted(set(leftover_processes(self.temp_dir, {p.pid for p in self.procs})))
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        print(f"[cluster-demo] {len(left)} leftover process(es) of this cluster killed", flush=True)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def leftover_processes(temp_dir: str, groups: set[int]) -> list[int]:
    """Pids in one of `groups` (the sessions of our `ray start`s) or whose command line names `temp_dir`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
            pgid = os.getpgid(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
        if pgid in groups or temp_dir in cmdline:
            out.append(int(entry.name))
    return out


def parse_status(out: str) -> str | None:
    """The job status in `ray job status` output (terminal states are printed as sentences)."""
    out = ANSI.sub("", out)
    for pattern, status in ((r"Job '[^']+' succeeded", "SUCCEEDED"), (r"Job '[^']+' failed", "FAILED"),
                            (r"Job '[^']+' was stopped", "STOPPED")):
        if re.search(pattern, out):
            return status
    found = re.search(r"Status for job '[^']+': (?:JobStatus\.)?(\w+)", out)
    return found.group(1).upper() if found else None


def follow(cluster: LocalCluster, job_id: str, timeout: float) -> str:
    """Poll `ray job status` until the job ends; print each new status. Returns the final one."""
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        out = cluster.ray("job", "status", job_id, "--address", cluster.dashboard, check=False)
        status = parse_status(out)
        if status != last:
            print(f"[cluster-demo] job {job_id}: {status or out.strip()[-200:]}", flush=True)
            last = status
        if status in TERMINAL:
            return status
        time.sleep(3)
    cluster.ray("job", "stop", job_id, "--address", cluster.dashboard, check=False)
    return "TIMEOUT"


def check_outputs(out: Path, logs: str) -> list[str]:
    """What must hold after the demo job; returns the failures (empty = all good)."""
    problems = []
    markers = sorted((out / "l2i").glob("*_stats.json"))
    if not markers:
        problems.append(f"no complete output shards in {out / 'l2i'}")
    ok = sum(json.loads(m.read_text())["status"].get("ok", 0) for m in markers)
    rows = sum(json.loads(m.read_text())["count"] for m in markers)
    if not ok:
        problems.append("no ok samples")
    if "shards written" not in logs:
        problems.append("the job's final summary is not in `ray job logs`")
    if not (out / "contact_sheet.png").is_file():
        problems.append("no contact_sheet.png")
    print(f"[cluster-demo] outputs: {len(markers)} shards, {rows} rows, {ok} ok", flush=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="cluster_demo_out", help="job outputs and node logs go here")
    ap.add_argument("--cpus-per-node", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900, help="seconds for the job to finish")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout or Ctrl-C still stops the nodes
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    cluster = LocalCluster(workdir, args.cpus_per_node)
    job_id = f"l2i-demo-{int(time.time())}"
    try:
        cluster.start()
        print(f"[cluster-demo] dashboard {cluster.dashboard}; submitting {job_id}", flush=True)
        cluster.ray("job", "submit", "--address", cluster.dashboard, "--submission-id", job_id, "--no-wait",
                    "--working-dir", str(ROOT), "--runtime-env", str(ROOT / "infra" / "runtime_env.yaml"),
                    "--", "python", "-m", "l2i_pipeline.cli", "demo", "--workdir", str(workdir / "job"),
                    "--runner", "ray", "--raw-shard-size", "10", "--no-training")
        status = follow(cluster, job_id, args.timeout)
        logs = cluster.ray("job", "logs", job_id, "--address", cluster.dashboard, check=False)
        logs = ANSI.sub("", logs)
        (workdir / "job.log").write_text(logs)
        print(f"[cluster-demo] `ray job logs {job_id}` saved to {workdir / 'job.log'}; last lines:", flush=True)
        print("\n".join(logs.strip().splitlines()[-8:]), flush=True)
        problems = [f"job ended {status}"] if status != "SUCCEEDED" else []
        problems += check_outputs(workdir / "job", logs)
    finally:
        cluster.stop()
    for p in problems:
        print(f"[cluster-demo] FAILED: {p}", flush=True)
    print("[cluster-demo] " + ("all checks passed" if not problems else "failed"), flush=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
