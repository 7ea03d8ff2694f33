#!/usr/bin/env bash
# checkov into its own venv (default /tmp/checkov-venv, or $CHECKOV_VENV), never the project's .venv: its
# pins clash with the project's. Idempotent. tests/infra/test_k8s_manifests.py skips when it is absent.
set -euo pipefail
VENV="${CHECKOV_VENV:-/tmp/checkov-venv}"
if [ -x "$VENV/bin/checkov" ]; then echo "checkov already in $VENV"; exit 0; fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "checkov==3.3.30" || echo "checkov could not be installed: the policy test will skip" >&2
