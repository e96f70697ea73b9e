#!/usr/bin/env bash
# Install what `tests/integration/prometheus/test_report.py` opens the weekly report with: Debian
# 12's Chromium (headless screenshots of the page). Idempotent.
set -euo pipefail
packages=(chromium)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
SUDO=""
[[ $(id -u) == 0 ]] || SUDO=sudo
echo "[report] installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
