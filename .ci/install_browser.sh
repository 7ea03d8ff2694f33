#!/usr/bin/env bash
# Headless Chromium for the annotation app's browser test (tests/annotations/test_browser.py).
# Idempotent: installs Debian's chromium only when /usr/bin/chromium is missing. The Python `playwright`
# package comes from pyproject; never run `playwright install` (it downloads its own browser).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
/usr/bin/chromium --version
