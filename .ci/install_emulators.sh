#!/usr/bin/env bash
# Azurite (az:// tests) from npm into ~/.cache/l2i/emulators (or $L2I_EMULATORS), outside the repository.
# Idempotent: installs only when missing. fake-gcs-server (gs:// tests) comes from pyproject's [test] extra.
set -euo pipefail
DIR="${L2I_EMULATORS:-$HOME/.cache/l2i/emulators}"
if [ -x "$DIR/node_modules/.bin/azurite-blob" ]; then
    echo "azurite already installed in $DIR"
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "npm not found: az:// emulator tests will skip"
    exit 0
fi
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-audit --no-fund azurite@3.37.0 || echo "azurite could not be installed from npm: the az:// emulator tests will skip" >&2
