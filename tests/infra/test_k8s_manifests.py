"""infra/k8s offline: KubeRay kinds against the vendored CRD schemas (unknown fields rejected, as the API
server would silently prune them), every pod template against Kubernetes' own schemas, and the choices
the manifests must keep (Ray version, GPUs, Secret, weights volume, bucket URLs, real `l2i` arguments)."""
from __future__ import annotations

import copy
import functools
import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
RAYJOBS = {p.stem.removeprefix("rayjob-"): p for p in MANIFESTS if p.stem.startswith("rayjob-")}
KUBERAY_MIN_RAY = (2, 38, 0)  # KubeRay >= 1.3 supports Ray >= 2.38 (see infra/k8s/crds/SOURCE.md)
SECRET = "l2i-storage"
kv = pytest.importorskip("kubernetes_validate")


def closed(schema):
    """The schema with unknown fields rejected wherever it lists properties and does not preserve unknowns."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k == "enum" else closed(v)) for k, v in schema.items()}
    if "properties" in out:
        out["properties"] = {k: closed(v) for k, v in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema:
            out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(kind: str) -> jsonschema.Draft7Validator:
    schema = json.loads((K8S / "crds" / f"{kind.lower()}-v1.schema.json").read_text())
    return jsonschema.Draft7Validator(closed(schema))


def load(path: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(docs) == 1, f"{path.name}: one document per file"
    return docs[0]


def cluster_spec(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


def pod_templates(doc: dict) -> list[tuple[str, dict]]:
    spec = cluster_spec(doc)
    return [("head", spec["headGroupSpec"]["template"])] + [
        (g["groupName"], g["template"]) for g in spec.get("workerGroupSpecs", [])]


@functools.lru_cache(maxsize=1)
def pod_template_validator() -> jsonschema.Draft202012Validator:
    """kubernetes-validate's strict PodTemplate schema for its newest Kubernetes, built once (its
    `validate()` re-reads the 2 MB of definitions on every call)."""
    from referencing import Registry, Resource

    schema_dir = f"kubernetes-json-schema/v{kv.latest_version()}-local-strict"
    schema = kv.utils.schema_contents(f"{schema_dir}/podtemplate-v1.json", kv.latest_version())
    definitions = kv.utils.schema_contents(f"{schema_dir}/_definitions.json", kv.latest_version())
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def pod_template_errors(template: dict) -> list[str]:
    doc = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in pod_template_validator().iter_errors(doc)]


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def dockerfile_ray_version() -> str:
    m = re.search(r"^ARG RAY_VERSION=(\S+)$", (ROOT / "infra" / "Dockerfile").read_text(), re.M)
    assert m, "infra/Dockerfile pins ARG RAY_VERSION"
    return m.group(1)


def test_every_manifest_is_a_known_kind():
    kinds = {p.name: load(p)["kind"] for p in MANIFESTS}
    assert set(RAYJOBS) == {"download", "synthesize", "train"}
    assert kinds["raycluster.yaml"] == "RayCluster"
    assert all(k in {"RayJob", "RayCluster", "PersistentVolumeClaim"} for k in kinds.values()), kinds


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(path: Path):
    doc = load(path)
    if doc["apiVersion"] == "ray.io/v1":
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in crd_validator(doc["kind"]).iter_errors(doc)]
        assert not errors, errors
        for name, template in pod_templates(doc):
            assert not pod_template_errors(template), (name, pod_template_errors(template))
    else:
        kv.validate(doc, kv.latest_version(), strict=True)


def test_misspelt_fields_are_rejected():
    doc = load(RAYJOBS["synthesize"])
    bad = copy.deepcopy(doc)
    bad["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParam"] = {}
    assert any("rayStartParam" in e.message for e in crd_validator("RayJob").iter_errors(bad))
    bad = copy.deepcopy(doc)
    bad["spec"]["shutdownAfterJobFinish"] = True
    assert list(crd_validator("RayJob").iter_errors(bad))
    template = copy.deepcopy(pod_templates(doc)[1][1])
    template["spec"]["containers"][0]["volumeMount"] = []
    assert any("volumeMount" in e for e in pod_template_errors(template))
    template = copy.deepcopy(pod_templates(doc)[1][1])
    template["spec"]["securityContext"]["runAsUser"] = "l2i"
    assert any("runAsUser" in e for e in pod_template_errors(template))


@pytest.mark.parametrize("path", [p for p in MANIFESTS if p.stem.startswith("ray")], ids=lambda p: p.name)
def test_cluster_shape(path: Path):
    doc = load(path)
    spec = cluster_spec(doc)
    image_ray = dockerfile_ray_version()
    assert spec["rayVersion"] == image_ray, "rayVersion must equal the image's Ray"
    assert version_tuple(spec["rayVersion"]) >= KUBERAY_MIN_RAY
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-gpus"] == "0"
    assert int(head["rayStartParams"]["object-store-memory"]) > 0
    for name, template in pod_templates(doc):
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
        (container,) = pod["containers"]
        assert container["image"].rsplit(":", 1)[1].startswith("0.1.0"), container["image"]
        assert {"secretRef": {"name": SECRET}} in container["envFrom"], f"{name}: credentials from the Secret"
        shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"]["medium"] == "Memory" and shm["emptyDir"]["sizeLimit"]
        gpus = container["resources"].get("limits", {}).get("nvidia.com/gpu")
        assert (gpus is not None) == (name == "gpu-workers"), f"{name}: GPUs only in the GPU group"
        if gpus:
            models = next(v for v in pod["volumes"] if v["name"] == "models")
            assert models["persistentVolumeClaim"]["readOnly"]
            assert {"name": "models", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    for group in spec.get("workerGroupSpecs", []):
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert int(group["rayStartParams"]["object-store-memory"]) > 0
    if doc["kind"] == "RayCluster":
        assert {g["groupName"] for g in spec["workerGroupSpecs"]} == {"gpu-workers", "cpu-workers"}
        assert spec["enableInTreeAutoscaling"]


def test_pyproject_ray_floor_is_supported_by_kuberay():
    text = (ROOT / "pyproject.toml").read_text()
    floor = re.search(r'"ray\[[^\]]*\]>=([\d.]+)"', text).group(1)
    assert version_tuple(floor) + (0,) * (3 - len(floor.split("."))) >= KUBERAY_MIN_RAY


@pytest.mark.parametrize("job", sorted(RAYJOBS))
def test_rayjob_entrypoint_is_a_real_resumable_l2i_command(job: str):
    from l2i_pipeline.cli import build_parser

    doc = load(RAYJOBS[job])
    spec = doc["spec"]
    assert spec["shutdownAfterJobFinishes"] and spec["backoffLimit"] >= 1  # a retry resumes
    yaml.safe_load(spec["runtimeEnvYAML"])
    argv = shlex.split(spec["entrypoint"])
    assert argv[0] == "l2i" and argv[1] == job
    for flag in ("--input", "--output", "--data", "--out"):
        if flag in argv:
            assert argv[argv.index(flag) + 1].startswith("s3://"), f"{flag} is a bucket URL"
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    if job not in commands:
        pytest.skip(f"`l2i {job}` is not on this branch yet")
    args = parser.parse_args(argv[1:])  # argparse exits on an unknown flag
    if getattr(args, "set", None):
        from l2i_pipeline.core.config import load_config

        load_config(None, args.set)  # every --set key exists and has the right type
