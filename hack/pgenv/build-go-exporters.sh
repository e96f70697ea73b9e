#!/usr/bin/env bash
# Build Prometheus exporters from their Go sources, one binary per version, into the cache:
#   $RWSCALER_CACHE/bin/<exporter>-<version>/<exporter>
# A binary already in the cache is never rebuilt. Used by `make record-exporter-metrics`
# (tools/record_exporter_metrics.py) to record what exporters newer than Debian 12's, and the
# PgBouncer exporter generations, really export.
#
#   hack/pgenv/build-go-exporters.sh                       # every exporter and version below
#   hack/pgenv/build-go-exporters.sh pgbouncer_exporter    # one exporter, its versions below
#   hack/pgenv/build-go-exporters.sh pgbouncer_exporter v0.11.0   # one exporter, other versions
#
# What and why:
#   pgbouncer_exporter (prometheus-community) v0.10.2: the last that reads SHOW STATS
#     (pgbouncer_stats_queries_pooled_total, ...); v0.12.1: SHOW STATS_TOTALS
#     (pgbouncer_stats_totals_*, since 0.11.0). Debian 12 has no Go PgBouncer exporter.
#   postgres_exporter (prometheus-community) v0.20.1: Debian 12 has 0.11.1, which predates the
#     default replication collector (pg_replication_is_replica, 0.13.0).
#   mysqld_exporter (prometheus) v0.20.0: Debian 12 has 0.14.0, which predates SHOW REPLICA STATUS
#     (0.16.0).
#
# Where the source comes from: first `go install <module>@<version>` through the Go module proxy.
# The proxy reachable from the development machine answers 403 for these three modules (it serves
# their dependencies), so the fallback is a git clone of the exporter's repository named by
# PGBOUNCER_EXPORTER_GIT, POSTGRES_EXPORTER_GIT or MYSQLD_EXPORTER_GIT (a work tree or a bare
# repository holding the release tags): the tag is exported with `git archive` and built with
# -mod=mod (its go.mod/go.sum pin the dependencies, which the proxy serves).
# Exits non-zero, naming each exporter version it could not build.
set -euo pipefail

cache=${RWSCALER_CACHE:-$HOME/.cache/rwscaler}
bin_root=$cache/bin
log_dir=$cache/build-logs
mkdir -p "$bin_root" "$log_dir"
command -v go >/dev/null || { echo "build-go-exporters: go is not on PATH" >&2; exit 1; }

# exporter -> "module main-package default-versions git-env-var"
declare -A SPEC=(
	[pgbouncer_exporter]="github.com/prometheus-community/pgbouncer_exporter . v0.10.2,v0.12.1 PGBOUNCER_EXPORTER_GIT"
	[postgres_exporter]="github.com/prometheus-community/postgres_exporter ./cmd/postgres_exporter v0.20.1 POSTGRES_EXPORTER_GIT"
	[mysqld_exporter]="github.com/prometheus/mysqld_exporter . v0.20.0 MYSQLD_EXPORTER_GIT"
)
failed=()

build() {
	local name=$1 v=$2 module pkg _ envvar
	read -r module pkg _ envvar <<<"${SPEC[$name]}"
	local dir=$bin_root/$name-$v logf=$log_dir/$name-$v.log tmp gd src=${!envvar:-}
	if [[ -x $dir/$name ]]; then
		echo "$name $v: cached in $dir"
		return
	fi
	tmp=$(mktemp -d "$bin_root/.build-$name.XXXXXX")
	: >"$logf"
	local ld="-s -w -X github.com/prometheus/common/version.Version=${v#v}"
	local target=$module
	[[ $pkg == . ]] || target=$module/${pkg#./}
	echo "$name $v: building with $(go env GOVERSION); log: $logf"
	if (cd "$tmp" && GOBIN=$tmp/out nice -n 10 go install -ldflags "$ld" "$target@$v") >>"$logf" 2>&1; then
		:
	elif [[ -n $src ]] && gd=$([[ -d $src/.git ]] && echo "$src/.git" || echo "$src") &&
		git --git-dir="$gd" rev-parse -q --verify "refs/tags/$v" >/dev/null; then
		echo "# the module proxy has no $module@$v; building the tag from $gd" >>"$logf"
		mkdir -p "$tmp/src" "$tmp/out"
		ld+=" -X github.com/prometheus/common/version.Revision=$(git --git-dir="$gd" rev-parse "$v^{commit}")"
		{ git --git-dir="$gd" archive "$v" | tar -x -C "$tmp/src" &&
			(cd "$tmp/src" && GOFLAGS=-mod=mod nice -n 10 go build -ldflags "$ld" -o "$tmp/out/$name" "$pkg"); } >>"$logf" 2>&1 || true
	else
		echo "# no $envvar clone with tag $v to fall back on" >>"$logf"
	fi
	if [[ -x $tmp/out/$name ]]; then
		mkdir -p "$dir"
		mv -f "$tmp/out/$name" "$dir/$name"
		echo "$name $v: built $dir/$name"
	else
		failed+=("$name $v")
		echo "$name $v: cannot build (the module proxy refuses it and no $envvar clone has the tag); see $logf" >&2
		grep -E -m 5 'error|403|cannot|go: ' "$logf" | sed 's/^/    /' >&2 || true
	fi
	rm -rf "$tmp"
}

names=("${!SPEC[@]}")
if (($#)); then
	[[ -n ${SPEC[$1]:-} ]] || { echo "build-go-exporters: unknown exporter $1 (${!SPEC[*]})" >&2; exit 2; }
	names=("$1")
	shift
fi
for name in $(printf '%s\n' "${names[@]}" | sort); do
	versions=("$@")
	if ((${#versions[@]} == 0)); then
		read -r _ _ list _ <<<"${SPEC[$name]}"
		IFS=, read -r -a versions <<<"$list"
	fi
	for v in "${versions[@]}"; do
		build "$name" "$v"
	done
done
if ((${#failed[@]})); then
	printf 'build-go-exporters: could not build: %s\n' "${failed[@]}" >&2
	exit 1
fi
