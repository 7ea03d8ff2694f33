#!/usr/bin/env bash
# A private Docker daemon from Debian's docker.io, for building and running the image where none runs:
# no bridge, no iptables/ip6tables changes (containers get --network none or host), its own data root,
# pidfile, exec root and socket under DIR. Needs root.
#   infra/dockerd.sh start DIR   # prints: export DOCKER_HOST=unix://DIR/docker.sock
#   infra/dockerd.sh stop DIR    # stops that daemon (by its pidfile) and nothing else
set -euo pipefail
cmd=${1:?usage: dockerd.sh start|stop DIR}
dir=${2:?usage: dockerd.sh start|stop DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
case "$cmd" in
start)
    command -v dockerd >/dev/null || {
        echo "dockerd.sh: installing docker.io from Debian" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >&2
    }
    dockerd --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
        --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
        --host "unix://$dir/docker.sock" >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 60); do
        DOCKER_HOST="unix://$dir/docker.sock" docker info >/dev/null 2>&1 && {
            echo "export DOCKER_HOST=unix://$dir/docker.sock"; exit 0; }
        sleep 1
    done
    echo "dockerd.sh: the daemon did not answer within 60 s; its log:" >&2
    tail -n 30 "$dir/dockerd.log" >&2
    exit 1
    ;;
stop)
    [ -f "$dir/docker.pid" ] || { echo "dockerd.sh: no daemon recorded in $dir" >&2; exit 0; }
    pid=$(cat "$dir/docker.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 1; done
    echo "dockerd.sh: daemon $pid still running after 30 s" >&2
    exit 1
    ;;
*) echo "usage: dockerd.sh start|stop DIR" >&2; exit 2 ;;
esac
