"""The shard format lives in l2i_pipeline/formats/ only (issue 22, item 3): no code outside it spells a
member name, opens a tar, or encodes an 8-bit mask by hand."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from l2i_pipeline.formats import names

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("l2i_pipeline", "stages", "classifiers", "annotations", "training")
MEMBER_NAMES = {names.JPG, names.FG, names.MASK, names.INPAINT_MASK, names.BG, names.ALPHA, names.FG_RGBA,
                names.TXT, names.JSON, names.COMPOSITE, names.SAMPLES_INDEX}
MASK_CODE = re.compile(r"(mask|alpha).*(\*\s*255\b|/\s*255\b)")  # m * 255 or m8 / 255 by hand


def _sources():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "formats" not in path.relative_to(ROOT).parts:
                yield path


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def test_no_member_name_is_spelled_outside_formats():
    found = []
    for path in _sources():
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and id(node) not in skip and node.value in MEMBER_NAMES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, "member names belong in l2i_pipeline/formats/names.py:\n" + "\n".join(found)


def test_no_tar_or_8_bit_mask_code_outside_formats():
    found = []
    for path in _sources():
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"^\s*(import tarfile|from tarfile)", code) or MASK_CODE.search(code):
                found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "tar and mask encodings belong in l2i_pipeline/formats/:\n" + "\n".join(found)
