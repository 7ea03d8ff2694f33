"""The design docs live in the repository: every pointer to them resolves, and the paths they name exist."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("l2i_pipeline", "stages", "classifiers", "annotations", "training", "tests", "bench", "infra")
           for p in (ROOT / d).rglob("*") if p.suffix in (".py", ".md")] + [ROOT / "README.md"]


def test_every_pointer_to_a_design_doc_resolves():
    pointers = {m for p in SOURCES for m in re.findall(r"\b(?:docs/)?(?:ARCHITECTURE|TRAINING)\.md", p.read_text())}
    assert pointers, "the code cites its design docs"
    assert all(m.startswith("docs/") for m in pointers), f"cite the docs by their path: {sorted(pointers)}"
    for m in pointers:
        assert (ROOT / m).is_file(), m


def test_the_paths_the_docs_name_exist():
    for doc in (ROOT / "docs").glob("*.md"):
        named = set(re.findall(r"`((?:l2i_pipeline|stages|classifiers|annotations|training|infra)/[\w/.]*)`",
                               doc.read_text()))
        missing = [n for n in named if not (ROOT / n.split(":")[0]).exists()]
        assert not missing, f"{doc.name} names paths that do not exist: {missing}"
