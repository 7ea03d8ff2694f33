#!/usr/bin/env bash
# A local Debian base image for infra/Dockerfile where no container registry is reachable: debootstrap
# (minbase) from a Debian mirror, trimmed as debian:*-slim is (no man pages, docs or locales, no apt lists),
# then `docker import`. Needs root, debootstrap and a running Docker daemon (DOCKER_HOST honoured).
#   infra/make_base.sh [TAG]   # default l2i-base:bookworm; then: make image BASE_IMAGE=l2i-base:bookworm
# Env: SUITE (bookworm), MIRROR (http://deb.debian.org/debian). Skips the work if TAG already exists
# (FORCE=1 to rebuild).
set -euo pipefail
tag=${1:-l2i-base:bookworm}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
if [ -z "${FORCE:-}" ] && docker image inspect "$tag" >/dev/null 2>&1; then
    echo "make_base.sh: $tag already exists (FORCE=1 to rebuild)"
    exit 0
fi
command -v debootstrap >/dev/null || {
    echo "make_base.sh: installing debootstrap from Debian" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
}
root=$(mktemp -d /tmp/l2i-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/90norecommends"
find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/*.log "$root"/tmp/*
tar -C "$root" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$tag"
docker image ls "$tag"
