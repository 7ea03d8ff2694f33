"""The pods KubeRay v1.7.0 makes from infra/k8s's RayCluster/RayJob manifests, as plain `kind: Pod` documents, so
that Pod Security checks, Kubernetes' Pod schema and checkov (which does not look inside custom resources) see
what will run. Only what bears on security and scheduling is reproduced, from KubeRay's own source
(ray-project/kuberay, tag v1.7.0, ray-operator/controllers/ray/):
- head pod: its template plus the autoscaler sidecar when `enableInTreeAutoscaling` (common/pod.go
  BuildAutoscalerContainer, mergeAutoscalerOverrides: image of the head, resources/securityContext/volumeMounts/
  imagePullPolicy from `autoscalerOptions`), and the shared `ray-logs` emptyDir at /tmp/ray in both (BuildPod);
- pod labels: the template's plus ray.io/cluster, ray.io/node-type, ray.io/group (common/pod.go labelPod);
- submitter (RayJob, K8sJobMode): `submitterPodTemplate` (or the default container, common/job.go) with the
  labels ray.io/originated-from-cr-name=<RayJob name>, ray.io/originated-from-crd=RayJob
  (rayjob_controller.go getSubmitterTemplate).
"""
from __future__ import annotations

import copy

SHARED_LOGS = {"name": "ray-logs", "mountPath": "/tmp/ray"}


def cluster_spec(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


def _pod(name: str, template: dict, labels: dict) -> dict:
    meta = copy.deepcopy(template.get("metadata", {}))
    meta["name"] = name
    meta["labels"] = {**meta.get("labels", {}), **labels}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template["spec"])}


def _add_empty_dir(pod: dict, container: dict, mount: dict) -> None:
    """KubeRay's addEmptyDir: skipped when the container already mounts that path."""
    if any(m["mountPath"] == mount["mountPath"] for m in container.get("volumeMounts", [])):
        return
    if not any(v["name"] == mount["name"] for v in pod["spec"].get("volumes", [])):
        pod["spec"].setdefault("volumes", []).append({"name": mount["name"], "emptyDir": {}})
    container.setdefault("volumeMounts", []).append(dict(mount))


def autoscaler_container(spec: dict) -> dict:
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    opts = spec.get("autoscalerOptions", {})
    container = {"name": "autoscaler", "image": opts.get("image", head["image"]),
                 "imagePullPolicy": opts.get("imagePullPolicy", "IfNotPresent"),
                 "resources": opts.get("resources", {"limits": {"cpu": "500m", "memory": "512Mi"},
                                                     "requests": {"cpu": "500m", "memory": "512Mi"}})}
    for key in ("securityContext", "env", "envFrom", "command", "args"):
        if key in opts:
            container[key] = copy.deepcopy(opts[key])
    container["volumeMounts"] = copy.deepcopy(opts.get("volumeMounts", []))
    return container


def cluster_pods(doc: dict, cluster: str) -> list[tuple[str, dict]]:
    """(group, Pod) for the head and one pod of each worker group of the cluster KubeRay names `cluster`."""
    spec = cluster_spec(doc)
    base = {"ray.io/cluster": cluster}
    head = _pod(f"{cluster}-head", spec["headGroupSpec"]["template"],
                {**base, "ray.io/node-type": "head", "ray.io/group": "headgroup"})
    if spec.get("enableInTreeAutoscaling"):
        sidecar = autoscaler_container(spec)
        head["spec"]["containers"].append(sidecar)
        _add_empty_dir(head, head["spec"]["containers"][0], SHARED_LOGS)
        _add_empty_dir(head, sidecar, SHARED_LOGS)
    pods = [("head", head)]
    for group in spec.get("workerGroupSpecs", []):
        name = group["groupName"]
        pods.append((name, _pod(f"{cluster}-{name}", group["template"],
                                {**base, "ray.io/node-type": "worker", "ray.io/group": name})))
    return pods


def submitter_pod(doc: dict) -> dict:
    """The submitter Job's pod KubeRay makes for a RayJob in K8sJobMode (the default)."""
    spec = doc["spec"]
    template = spec.get("submitterPodTemplate") or {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "ray-job-submitter", "image": cluster_spec(doc)["headGroupSpec"]["template"]["spec"][
            "containers"][0]["image"]}]}}
    name = doc["metadata"]["name"]
    return _pod(f"{name}-submitter", template, {"ray.io/originated-from-cr-name": name,
                                                 "ray.io/originated-from-crd": "RayJob",
                                                 "app.kubernetes.io/created-by": "kuberay-operator"})


def all_pods(doc: dict) -> list[tuple[str, dict]]:
    """Every pod a manifest document makes: Ray clusters (plus a RayJob's submitter) and batch Jobs."""
    if doc["kind"] == "RayCluster":
        return cluster_pods(doc, doc["metadata"]["name"])
    if doc["kind"] == "RayJob":
        name = doc["metadata"]["name"]
        return cluster_pods(doc, f"{name}-abcde") + [("submitter", submitter_pod(doc))]
    if doc["kind"] == "Job":
        return [("job", _pod(doc["metadata"]["name"], doc["spec"]["template"], {}))]
    return []


def selects(selector: dict, labels: dict) -> bool:
    """A Kubernetes LabelSelector (matchLabels, matchExpressions In/NotIn/Exists/DoesNotExist) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True
