"""infra/k8s offline: KubeRay kinds against the vendored CRD schemas (unknown fields rejected, as the API
server would silently prune them), every pod template against Kubernetes' own schemas, and the choices
the manifests must keep (Ray version, GPUs, Secret, weights volume, bucket URLs, real `l2i` arguments)."""
from __future__ import annotations

import copy
import functools
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from kuberay_pods import all_pods, selects

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


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def load(path: Path) -> dict:
    """The file's main document (a Ray manifest is followed by its head's NetworkPolicy)."""
    return load_all(path)[0]


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
    assert all(k in {"RayJob", "RayCluster", "PersistentVolumeClaim", "Job"} for k in kinds.values()), kinds


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(path: Path):
    for doc in load_all(path):
        if doc["apiVersion"] == "ray.io/v1":
            errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                      for e in crd_validator(doc["kind"]).iter_errors(doc)]
            assert not errors, errors
            for name, template in pod_templates(doc):
                assert not pod_template_errors(template), (name, pod_template_errors(template))
            for _name, pod in all_pods(doc):  # as KubeRay makes them: autoscaler sidecar, submitter
                kv.validate(pod, kv.latest_version(), strict=True)
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
        assert container["image"].split("@")[0].rsplit(":", 1)[1].startswith("0.1.0"), container["image"]
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
        from stages.config import load_config

        load_config(None, args.set)  # every --set key exists and has the right type


RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_pod_meets_pod_security_restricted(path: Path):
    """The "restricted" profile (kubernetes.io/docs/concepts/security/pod-security-standards) for every pod
    the manifest makes, KubeRay's autoscaler sidecar and RayJob submitter included; root filesystem read-only
    with /tmp writable."""
    for doc in load_all(path):
        for name, pod in all_pods(doc):
            spec = pod["spec"]
            assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
            assert all(set(v) - {"name"} <= RESTRICTED_VOLUMES for v in spec.get("volumes", [])), name
            for c in spec["containers"]:
                sc = c.get("securityContext", {})
                where = f"{path.name} {name}/{c['name']}"
                assert sc.get("allowPrivilegeEscalation") is False and not sc.get("privileged"), where
                assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), where
                assert sc.get("runAsNonRoot", spec["securityContext"].get("runAsNonRoot")) is True, where
                assert sc.get("runAsUser", spec["securityContext"].get("runAsUser")) != 0, where
                assert sc.get("readOnlyRootFilesystem") is True, where
                assert c.get("imagePullPolicy") == "IfNotPresent" and "@sha256:" in c["image"], where
                assert not any(p.get("hostPort") for p in c.get("ports", [])), where
                mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
                assert "/tmp" in mounts, f"{where}: /tmp must be a writable emptyDir"


@pytest.mark.parametrize("path", [p for p in MANIFESTS if p.stem.startswith("ray")], ids=lambda p: p.name)
def test_ray_auth_and_head_network_policy(path: Path):
    doc, *rest = load_all(path)
    spec = cluster_spec(doc)
    assert spec["authOptions"] == {"mode": "token"}  # KubeRay >= 1.5.1, Ray >= 2.52 (operator's validation)
    assert version_tuple(spec["rayVersion"]) >= (2, 52, 0)
    (policy,) = [d for d in rest if d["kind"] == "NetworkPolicy"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    pods = dict(all_pods(doc))
    selected = [n for n, p in pods.items() if selects(policy["spec"]["podSelector"], p["metadata"]["labels"])]
    assert selected == ["head"]
    own = [n for n in pods if n != "submitter"]

    def admitted(labels: dict, port: int) -> bool:
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), "a rule without `from` admits every pod"
            ports = {p["port"] for p in rule.get("ports", [])}
            if (not ports or port in ports) and any(
                    "podSelector" in peer and selects(peer["podSelector"], labels) for peer in rule["from"]):
                return True
        return False

    for name in own:
        assert admitted(pods[name]["metadata"]["labels"], 6379), f"{name} must reach the GCS"
    if doc["kind"] == "RayJob":
        sub = pods["submitter"]["metadata"]["labels"]
        assert admitted(sub, 8265) and not admitted(sub, 6379)
    assert not admitted({"app": "something-else"}, 8265)
    assert not admitted({"ray.io/originated-from-crd": "RayJob", "ray.io/originated-from-cr-name": "other"}, 8265)


@pytest.mark.parametrize("job", sorted(RAYJOBS))
def test_rayjob_deadlines_and_lock_owner(job: str):
    from l2i_pipeline.core.lock import OWNER_ENV

    doc = load(RAYJOBS[job])
    spec = doc["spec"]
    assert 0 < spec["preRunningDeadlineSeconds"] < spec["activeDeadlineSeconds"]
    head = cluster_spec(doc)["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = [e["name"] for e in head["env"]]
    owner = next(e["value"] for e in head["env"] if e["name"] == OWNER_ENV)
    assert owner.endswith("/" + doc["metadata"]["name"])
    for ref in re.findall(r"\$\((\w+)\)", owner):  # Kubernetes expands only variables defined before it
        assert env.index(ref) < env.index(OWNER_ENV)


@pytest.mark.parametrize("path", [p for p in MANIFESTS if p.stem.startswith("ray")], ids=lambda p: p.name)
def test_gpu_group_is_requested_and_placed(path: Path):
    spec = cluster_spec(load(path))
    for g in spec.get("workerGroupSpecs", []):
        if g["groupName"] != "gpu-workers":
            continue
        pod = g["template"]["spec"]
        assert pod["nodeSelector"] and pod["tolerations"]
        if g["minReplicas"] == 0:  # nothing starts GPU pods but the autoscaler, on the actors' GPU requests
            assert spec["enableInTreeAutoscaling"]


def test_synthesize_asks_for_gpus_and_fits_the_group():
    doc = load(RAYJOBS["synthesize"])
    argv = shlex.split(doc["spec"]["entrypoint"])
    sets = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--set")
    assert sets["saliency.device"] == sets["inpaint.device"] == "cuda"
    gpu = next(g for g in cluster_spec(doc)["workerGroupSpecs"] if g["groupName"] == "gpu-workers")
    assert int(sets["inpaint.num_actors"]) <= gpu["maxReplicas"]


def test_weights_volume_binds_and_is_filled_read_write_once():
    pvc = load(K8S / "models-pvc.yaml")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"] and pvc["spec"]["storageClassName"]
    fill = load(K8S / "models-fill-job.yaml")
    (mount,) = [m for m in fill["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
                if m["name"] == "models"]
    assert not mount.get("readOnly")


CHECKOV = shutil.which("checkov") or "/tmp/checkov-venv/bin/checkov"


def test_checkov_passes_on_every_pod(tmp_path: Path):
    """checkov (offline: --skip-download) on what will run; skips listed with reasons in infra/checkov.yaml.
    Install it with `bash infra/install_checkov.sh` (its own venv, /tmp/checkov-venv)."""
    if not Path(CHECKOV).exists():
        pytest.skip("checkov not installed (bash infra/install_checkov.sh)")
    for p in MANIFESTS:
        docs = []
        for d in load_all(p):
            docs += [pod for _, pod in all_pods(d)] if d["kind"] in ("RayJob", "RayCluster") else [d]
        (tmp_path / p.name).write_text("---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs))
    r = subprocess.run([CHECKOV, "-d", str(tmp_path), "--framework", "kubernetes", "--skip-download", "--quiet",
                        "--config-file", str(ROOT / "infra" / "checkov.yaml"), "-o", "json"],
                       capture_output=True, text=True, timeout=300)
    report = json.loads(r.stdout)
    failed = [(f["check_id"], f["resource"]) for f in report["results"]["failed_checks"]]
    assert not failed, failed
    assert report["summary"]["passed"] > 500
