#!/usr/bin/env bash
# Install what builds and runs the operator image here, from Debian 12's packages: podman,
# buildah, runc (crun fails on this machine's cgroups) and mmdebstrap. Idempotent.
set -euo pipefail
packages=(podman buildah runc mmdebstrap uidmap)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
SUDO=""
[[ $(id -u) == 0 ]] || SUDO=sudo
echo "[image] installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
