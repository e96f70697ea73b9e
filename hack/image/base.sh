#!/usr/bin/env bash
# Build the image's base from Debian 12 packages (no registry here) and import it into podman:
#   localhost/rwscaler-base:<key>   where <key> hashes this script (the package list and options)
# Prints the image reference. Cached: an existing image (or tarball under $RWSCALER_CACHE/image)
# is reused. About 130 MB: minbase + python3 + python3-venv + ca-certificates, merged /usr without
# the usrmerge package (which would pull in perl), no recommends, no docs, man pages or locales.
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

key=$(content_key hack/image/base.sh)
ref=$BASE_REPO:$key
if image_exists "$ref"; then
	log "base $ref: cached"
	echo "$ref"
	exit 0
fi
need_tools podman mmdebstrap runc
mkdir -p "$IMAGE_CACHE"
tarball=$IMAGE_CACHE/base-$key.tar
if [[ ! -s $tarball ]]; then
	log "building the base from Debian bookworm with mmdebstrap (about a minute); log: $IMAGE_CACHE/base-$key.log"
	mirror=http://deb.debian.org/debian
	if ! mmdebstrap --variant=minbase \
		--include=python3,python3-venv,ca-certificates \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
		--aptopt='APT::Install-Recommends "false"' \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-include=/usr/share/locale/locale.alias' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--components=main bookworm "$tarball.part.tar" \
		"deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
		"deb http://deb.debian.org/debian-security bookworm-security main" \
		>"$IMAGE_CACHE/base-$key.log" 2>&1; then
		tail -n 20 "$IMAGE_CACHE/base-$key.log" >&2
		rm -rf "$tarball.part.tar"
		die "mmdebstrap failed (full log: $IMAGE_CACHE/base-$key.log)"
	fi
	mv -f "$tarball.part.tar" "$tarball"
fi
log "importing $tarball as $ref"
"${PODMAN[@]}" import --quiet \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'CMD ["/bin/bash"]' \
	"$tarball" "$ref" >/dev/null
echo "$ref"
