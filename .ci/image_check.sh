#!/usr/bin/env bash
# Slow CI step: build the image and run the CLI inside it the way a cluster runs it (read-only root, every
# capability dropped, no network). The Docker daemon is Debian's docker.io (installed if absent), started
# here with no bridge and no iptables changes and stopped at the end; the base image is made locally with
# debootstrap (infra/make_base.sh), since no container registry is reachable. Needs root.
# Its data root (base image, layer cache) stays in $L2I_DOCKER_DIR (default ~/.cache/l2i/docker), so a
# rerun with an unchanged infra/requirements-image.txt reuses the pip layer. Any failure fails CI.
# Disk: a build from an empty data root peaks at ~22 GB there (measured 2026-12-04: the 6.8 GB venv layer
# exists twice while the legacy builder commits it, then once in the builder and once in the runtime stage).
# Before any work the free space is checked against L2I_IMAGE_NEED_GB (24); short of it, with
# L2I_CI_RECLAIM=1 (set by .ci/run on its throwaway clone) the clone's .venv, which only `make test` needed,
# is removed first; still short, the check exits 3 having built nothing, and says how much is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${L2I_DOCKER_DIR:-$HOME/.cache/l2i/docker}
base=${BASE_IMAGE:-l2i-base:bookworm}
t0=$(date +%s)
step() { echo "== image check: $* (+$(( $(date +%s) - t0 )) s)"; }
mkdir -p "$dir"
need_gb=${L2I_IMAGE_NEED_GB:-24}
free_gb() { df -P -BG "$dir" | awk 'NR==2 {sub("G", "", $4); print $4}'; }
if [ "$(free_gb)" -lt "$need_gb" ] && [ -n "${L2I_CI_RECLAIM:-}" ] && [ -d .venv ]; then
    echo "== image check: $(free_gb) GB free at $dir, $need_gb GB needed: removing this clone's .venv ($(du -sh .venv | cut -f1)), which only make test needed"
    rm -rf .venv
fi
if [ "$(free_gb)" -lt "$need_gb" ]; then
    echo "!! image check: $(free_gb) GB free at $dir ($(df -P -h "$dir" | awk 'NR==2 {print $1}')), a build from an empty data root needs $need_gb GB; nothing built" >&2
    exit 3
fi
step "start dockerd in $dir ($(free_gb) GB free)"
eval "$(infra/dockerd.sh start "$dir")"
trap 'infra/dockerd.sh stop "$dir"' EXIT
step "base image $base"
infra/make_base.sh "$base"
step "make image BASE_IMAGE=$base"
make image BASE_IMAGE="$base"
tag="l2i-pipeline:$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
run=(docker run --rm --read-only --cap-drop ALL --security-opt no-new-privileges --network none --shm-size 1g "$tag")
step "l2i --version"
"${run[@]}" l2i --version
step "l2i models check"
"${run[@]}" l2i models check
step "l2i demo --no-training"
"${run[@]}" l2i demo --no-training
size=$(docker image inspect --format '{{.Size}}' "$tag")
step "passed; $tag is $(( size / 1000000 )) MB"
