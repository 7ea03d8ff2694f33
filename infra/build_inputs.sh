#!/usr/bin/env bash
# Write infra/build-inputs/{pip.conf,ca.crt} for infra/Dockerfile's builder stage from this machine's pip
# settings: PIP_INDEX_URL / PIP_EXTRA_INDEX_URL / PIP_TRUSTED_HOST / PIP_DEFAULT_TIMEOUT or `pip config`
# (global.*), and the CA bundle pip uses (PIP_CERT, `pip config get global.cert`, else Debian's
# /etc/ssl/certs/ca-certificates.crt). Local index entries (file://, paths) are left out: the build
# cannot see them. Nothing here reaches the runtime image.
set -euo pipefail
out=${1:-$(dirname "$0")/build-inputs}
pip_cmd=${PYTHON:-python3}
mkdir -p "$out"
get() {  # get ENVVAR KEY: the env var, else `pip config get global.KEY`, else empty
    local v=${!1:-}
    [ -n "$v" ] || v=$("$pip_cmd" -m pip config get "global.$2" 2>/dev/null || true)
    printf '%s' "$v"
}
remote() { tr ' \n' '\n\n' | grep -E '^https?://' | tr '\n' ' ' || true; }
index=$(get PIP_INDEX_URL index-url | remote)
extra=$(get PIP_EXTRA_INDEX_URL extra-index-url | remote)
trusted=$(get PIP_TRUSTED_HOST trusted-host)
timeout=$(get PIP_DEFAULT_TIMEOUT timeout)
cert=$(get PIP_CERT cert)
[ -n "$cert" ] && [ -f "$cert" ] || cert=/etc/ssl/certs/ca-certificates.crt
{
    echo "[global]"
    [ -f "$cert" ] && echo "cert = /tmp/build-inputs/ca.crt"
    [ -n "${index// }" ] && echo "index-url = ${index% }"
    [ -n "${extra// }" ] && echo "extra-index-url = ${extra% }"
    [ -n "$trusted" ] && echo "trusted-host = $trusted"
    [ -n "$timeout" ] && echo "timeout = $timeout"
    true
} >"$out/pip.conf"
if [ -f "$cert" ]; then cp "$cert" "$out/ca.crt"; else rm -f "$out/ca.crt"; fi
echo "build inputs in $out: pip.conf ($(grep -c = "$out/pip.conf") settings)$([ -f "$out/ca.crt" ] && echo ", ca.crt from $cert")"
