"""infra/cluster-aws.yaml against the launcher schema shipped in the ray wheel; infra/runtime_env.yaml
against what Ray's RuntimeEnv knows."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]


def launcher_schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def test_cluster_launcher_config_is_valid():
    config = yaml.safe_load((ROOT / "infra" / "cluster-aws.yaml").read_text())
    jsonschema.validate(config, launcher_schema())
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"].get("CPU") == 0, "no Ray work on the head"
    gpu = [t for t in types.values() if t["resources"].get("GPU")]
    assert gpu and all(t["max_workers"] >= t.get("min_workers", 0) for t in gpu)
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert re.search(r"^ARG RAY_VERSION=", dockerfile, re.M)
    assert config["docker"]["image"].endswith(":0.1.0"), "the image built by `make image`"
    assert any("/models:ro" in o for o in config["docker"]["run_options"]), "weights mounted read-only"
    assert not re.search(r"(?i)aws_secret|secret_access_key", (ROOT / "infra" / "cluster-aws.yaml").read_text())


def test_launcher_schema_rejects_a_misspelt_key():
    config = yaml.safe_load((ROOT / "infra" / "cluster-aws.yaml").read_text())
    config["docker"]["imagee"] = config["docker"].pop("image")
    errors = list(jsonschema.Draft7Validator(launcher_schema()).iter_errors(config))
    assert any("imagee" in e.message for e in errors)


def test_runtime_env_uses_only_known_fields_and_no_credentials():
    from ray.runtime_env import RuntimeEnv

    text = (ROOT / "infra" / "runtime_env.yaml").read_text()
    env = yaml.safe_load(text)
    assert set(env) <= RuntimeEnv.known_fields, set(env) - RuntimeEnv.known_fields
    RuntimeEnv(**env)
    assert {".venv", ".git"} <= set(env["excludes"])
    assert all(isinstance(v, str) for v in env["env_vars"].values())
    assert not any(re.search(r"(?i)secret|password|auth_token|^aws_|access_key", k) for k in env["env_vars"])
    assert "pip" not in env and "conda" not in env, "nodes run the image; nothing is installed per job"
