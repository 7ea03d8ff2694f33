"""Regenerate the vendored KubeRay schemas from the CRD YAML of a KubeRay release (see SOURCE.md).

    python infra/k8s/crds/extract_schema.py ray.io_rayjobs.yaml ray.io_rayclusters.yaml

Keeps the `openAPIV3Schema` of the served storage version (ray.io/v1) of each CRD, minus `status`
(written by the operator, never by a user) and minus the `description` texts (most of the bytes; the
API reference has them). Nothing else changes, so validation is the API server's, field for field.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def strip_descriptions(node, in_properties: bool = False):
    """Drop the `description` keyword everywhere, but keep a property that happens to be named so."""
    if isinstance(node, dict):
        return {k: strip_descriptions(v, k == "properties" and not in_properties)
                for k, v in node.items() if in_properties or k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def extract(crd_path: Path) -> tuple[str, dict]:
    crd = yaml.safe_load(crd_path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    schema = version["schema"]["openAPIV3Schema"]
    schema["properties"].pop("status", None)
    return f"{crd['spec']['names']['kind'].lower()}-{version['name']}", strip_descriptions(schema)


def main(paths: list[str]) -> None:
    for p in paths:
        name, schema = extract(Path(p))
        out = Path(__file__).parent / f"{name}.schema.json"
        out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(f"{p} -> {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
