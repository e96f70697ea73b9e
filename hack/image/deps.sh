#!/usr/bin/env bash
# Install what builds and runs the operator image here, from Debian 12's packages: podman,
# buildah, runc (crun fails on this machine's cgroups) and mmdebstrap. Idempotent.
set -euo pipefail
# shellcheck source=../apt-install.sh
. "$(dirname "${BASH_SOURCE[0]}")/../apt-install.sh"
apt_install image podman buildah runc mmdebstrap uidmap
