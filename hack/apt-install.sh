#!/usr/bin/env bash
# apt_install TAG PACKAGE...: install the Debian packages that are not installed yet (idempotent;
# sudo when not root); TAG prefixes the one line it prints when it installs something.
# Sourced by hack/image/deps.sh and hack/report/deps.sh.
apt_install() {
	local tag=$1 p
	shift
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	local sudo=""
	[[ $(id -u) == 0 ]] || sudo=sudo
	echo "[$tag] installing ${missing[*]}" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
