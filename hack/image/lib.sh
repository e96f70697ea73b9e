# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
# Shared settings of the image scripts (hack/image/*.sh); sourced, not run.
#
# podman runs here only with these flags: runc (crun fails on this machine's cgroups), cgroupfs,
# and ulimits below the sandbox's own. Images live in podman's local storage under the names
# below; there is no registry.
set -euo pipefail

IMAGE_HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$IMAGE_HACK_DIR/../.." && pwd)
RWSCALER_CACHE=${RWSCALER_CACHE:-$HOME/.cache/rwscaler}
IMAGE_CACHE=$RWSCALER_CACHE/image
IMAGE_REPO=${IMAGE_REPO:-localhost/rwscaler}
BASE_REPO=localhost/rwscaler-base
# The tag the chart's default values name (its appVersion), kept equal to pyproject's version.
APP_VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO_ROOT/pyproject.toml" | head -n1)

PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)
ULIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)

log() { printf '[image] %s\n' "$*" >&2; }
die() {
	printf '[image] error: %s\n' "$*" >&2
	exit 1
}

need_tools() {
	local t missing=()
	for t in "$@"; do command -v "$t" >/dev/null || missing+=("$t"); done
	((${#missing[@]} == 0)) || die "missing ${missing[*]}: run \`make image-deps\` (Debian's podman, buildah, runc, mmdebstrap)"
}

image_exists() { "${PODMAN[@]}" image exists "$1"; }

# sha256 of the named files' contents and names, first 12 hex digits
content_key() {
	(cd "$REPO_ROOT" && for f in "$@"; do printf '%s\0' "$f"; cat "$f"; done) | sha256sum | cut -c1-12
}
