#!/usr/bin/env bash
# The README's test command (`make test`): set up everything the tests need on a fresh machine of
# this kind, then run every tier with nothing allowed to skip.
#   1. Debian packages: PostgreSQL 15, PgBouncer, Prometheus, the exporters, MariaDB (pgenv-deps-mysql),
#      podman, buildah, runc, mmdebstrap (image-deps), Chromium (report-deps)
#   2. the local control plane and helm, built once from Go modules (cached in $RWSCALER_CACHE),
#      then started on 127.0.0.1 unless it is already up
#   3. the operator image (cached by the hash of its inputs)
#   4. pytest on every tier with RWSCALER_REQUIRE_ALL_TIERS=1 (a skip, xfail or xpass fails)
# A control plane this script started is stopped at the end; one that was already up is left up.
# Extra arguments go to pytest (e.g. `make test PYTEST_ARGS='-x'`).
set -euo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "Debian packages (PostgreSQL, PgBouncer, Prometheus, MariaDB, exporters, podman, mmdebstrap, Chromium)"
$MAKE --no-print-directory pgenv-deps-mysql image-deps report-deps

step "The local control plane and helm (built once, cached under ${RWSCALER_CACHE:-~/.cache/rwscaler})"
$MAKE --no-print-directory cluster-build
started=0
if ! bash hack/cluster/status.sh >/dev/null 2>&1; then
	$MAKE --no-print-directory cluster
	started=1
	trap '$MAKE --no-print-directory cluster-down >/dev/null 2>&1 || true' EXIT
fi

step "The operator image (podman, cached by the hash of its inputs)"
$MAKE --no-print-directory image >/dev/null

step "Every test tier; nothing may skip"
export RWSCALER_REQUIRE_ALL_TIERS=1
status=0
.venv/bin/python -m pytest "$@" || status=$?
if ((started)); then
	step "Stopping the control plane this run started"
fi
exit "$status"
