#!/usr/bin/env bash
# Slow CI step: build the image and run the CLI inside it the way a cluster runs it (read-only root, every
# capability dropped, no network). The Docker daemon is Debian's docker.io (installed if absent), started
# here with no bridge and no iptables changes and stopped at the end; the base image is made locally with
# debootstrap (infra/make_base.sh), since no container registry is reachable. Needs root.
# Its data root (base image, layer cache) stays in $L2I_DOCKER_DIR (default ~/.cache/l2i/docker), so a
# rerun with an unchanged infra/requirements-image.txt reuses the pip layer. Any failure fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${L2I_DOCKER_DIR:-$HOME/.cache/l2i/docker}
base=${BASE_IMAGE:-l2i-base:bookworm}
t0=$(date +%s)
step() { echo "== image check: $* (+$(( $(date +%s) - t0 )) s)"; }
step "start dockerd in $dir"
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
