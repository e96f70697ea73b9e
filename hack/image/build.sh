#!/usr/bin/env bash
# Build the operator image from the Dockerfile with podman, on the Debian base (base.sh):
#   localhost/rwscaler:<key>   <key> hashes the Dockerfile, pyproject.toml, operator/ and the base
#   localhost/rwscaler:<version>  the same image under the chart's default tag (pyproject's version)
# Prints the image reference (localhost/rwscaler:<key>) and records it in $RWSCALER_CACHE/image/ref.
# Cached: when an image with the same key exists, nothing is built.
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_tools podman buildah mmdebstrap runc
base=$("$IMAGE_HACK_DIR/base.sh")
mapfile -t inputs < <(cd "$REPO_ROOT" && {
	printf '%s\n' Dockerfile .containerignore pyproject.toml
	git ls-files operator 2>/dev/null || find operator -type f ! -path '*/__pycache__/*'
} | LC_ALL=C sort -u)
key=$( (content_key "${inputs[@]}"; echo "$base") | sha256sum | cut -c1-12)
ref=$IMAGE_REPO:$key
mkdir -p "$IMAGE_CACHE"
if image_exists "$ref"; then
	log "image $ref: cached"
else
	secret=()
	# pip inside the build trusts what this machine trusts (e.g. a TLS-intercepting proxy's CA in
	# the system bundle): the CA bundle goes in as a build secret, never into a layer.
	cert=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
	[[ -n $cert && -s $cert ]] && secret=(--secret "id=pip_cert,src=$cert")
	log "building $ref on $base (a few minutes on a cold machine); log: $IMAGE_CACHE/build-$key.log"
	if ! "${PODMAN[@]}" build --network host "${ULIMITS[@]}" --pull=never \
		--build-arg "BASE_IMAGE=$base" "${secret[@]}" \
		--label "io.rwscaler.inputs=$key" \
		-f "$REPO_ROOT/Dockerfile" -t "$ref" "$REPO_ROOT" >"$IMAGE_CACHE/build-$key.log" 2>&1; then
		tail -n 30 "$IMAGE_CACHE/build-$key.log" >&2
		die "podman build failed (full log: $IMAGE_CACHE/build-$key.log)"
	fi
fi
"${PODMAN[@]}" tag "$ref" "$IMAGE_REPO:$APP_VERSION"
echo "$ref" >"$IMAGE_CACHE/ref"
# Earlier builds of this repository are replaced, not kept: remove their tags and the layers
# nothing uses any more, so rebuilding after each change does not fill the disk.
mapfile -t stale < <("${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}}' "$IMAGE_REPO" |
	grep -v -x -e "$ref" -e "$IMAGE_REPO:$APP_VERSION" || true)
if ((${#stale[@]})); then
	"${PODMAN[@]}" rmi "${stale[@]}" >/dev/null 2>&1 || true
fi
"${PODMAN[@]}" image prune --force >/dev/null 2>&1 || true
log "image $ref (also $IMAGE_REPO:$APP_VERSION): $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$ref" | awk '{printf "%.0f MB", $1/1e6}')"
echo "$ref"
