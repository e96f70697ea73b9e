#!/usr/bin/env bash
# Build the binaries of the local control plane into the versioned cache:
#   $RWSCALER_CACHE/bin/<name>-<version>/<name>
# A binary already in the cache is never rebuilt; a version bump in versions.sh builds
# into a new directory. Usage: build.sh [etcd|kube|kwok|helm ...]   (default: all four)
#   kube = kube-apiserver, kube-controller-manager, kube-scheduler and kubectl.
# Exits non-zero, naming each binary that could not be built and why, if any failed.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
go_env

command -v go >/dev/null || die "go is not on PATH; the control plane is built from Go modules"
GO_VERSION=$(go env GOVERSION)
mkdir -p "$BIN_ROOT" "$BUILD_LOG_DIR"
lock build

NICE=(nice -n 10)
failed=()

have() {
	local n
	for n in "$@"; do [[ -x $(bin_path "$n") ]] || return 1; done
}

# fail NAME... LOGFILE: record the failure and show why (the compiler's last words)
fail() {
	local logf=${*: -1} names=("${@:1:$#-1}")
	failed+=("${names[*]}")
	{
		echo "[cluster] error: cannot build ${names[*]} with $GO_VERSION; full log: $logf"
		grep -E -m 20 'error|cannot|undefined|invalid|go: ' "$logf" | sed 's/^/    /' || tail -n 20 "$logf" | sed 's/^/    /'
	} >&2
}

# install_from TMPDIR NAME...: move freshly built binaries into their versioned directories
install_from() {
	local tmp=$1 n
	shift
	for n in "$@"; do
		mkdir -p "$(bin_dir "$n")"
		mv -f "$tmp/$n" "$(bin_path "$n").tmp"
		mv -f "$(bin_path "$n").tmp" "$(bin_path "$n")"
		log "built $(bin_path "$n")"
	done
}

build_kube() {
	local names=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
	if have "${names[@]}"; then
		log "kubernetes $KUBE_VERSION: cached in $BIN_ROOT"
		return
	fi
	local mod=$CLUSTER_HACK_DIR/k8s logf=$BUILD_LOG_DIR/kubernetes-$KUBE_VERSION.log tmp date minor
	tmp=$(mktemp -d "$BIN_ROOT/.build-kube.XXXXXX")
	# buildDate: the release's publication time on the proxy, so the build is reproducible
	date=$(cd "$mod" && go list -m -f '{{with .Time}}{{.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes 2>/dev/null || true)
	minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	local ld="-s -w" pkg key val
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		# gitCommit: the module proxy does not say which commit a version is; empty beats
		# the source's "$Format:%H$" placeholder
		for kv in "gitVersion=$KUBE_VERSION" "gitMajor=1" "gitMinor=$minor" "buildDate=${date:-1970-01-01T00:00:00Z}" "gitCommit="; do
			key=${kv%%=*} val=${kv#*=}
			ld+=" -X $pkg.$key=$val"
		done
	done
	log "building kubernetes $KUBE_VERSION (${names[*]}) with $GO_VERSION; log: $logf"
	if (cd "$mod" && "${NICE[@]}" go build -mod=readonly -ldflags "$ld" -o "$tmp/" \
		"${names[@]/#/k8s.io/kubernetes/cmd/}") >"$logf" 2>&1; then
		install_from "$tmp" "${names[@]}"
	else
		fail "${names[@]}" "$logf"
	fi
	rm -rf "$tmp"
}

build_etcd() {
	if [[ -n ${CLUSTER_ETCD_BIN:-} ]]; then
		[[ -x $CLUSTER_ETCD_BIN ]] || { failed+=(etcd); echo "[cluster] error: CLUSTER_ETCD_BIN=$CLUSTER_ETCD_BIN is not an executable" >&2; }
		log "etcd: using CLUSTER_ETCD_BIN=$CLUSTER_ETCD_BIN, not building"
		return
	fi
	if have etcd; then
		log "etcd $ETCD_VERSION: cached in $(bin_dir etcd)"
		return
	fi
	local mod=$CLUSTER_HACK_DIR/etcd logf=$BUILD_LOG_DIR/etcd-$ETCD_VERSION.log tmp
	tmp=$(mktemp -d "$BIN_ROOT/.build-etcd.XXXXXX")
	log "building etcd $ETCD_VERSION with $GO_VERSION; log: $logf"
	if (cd "$mod" && "${NICE[@]}" go build -mod=readonly -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3) >"$logf" 2>&1; then
		install_from "$tmp" etcd
	else
		fail etcd "$logf"
	fi
	rm -rf "$tmp"
}

build_kwok() {
	if have kwok; then
		log "kwok $KWOK_VERSION: cached in $(bin_dir kwok)"
		return
	fi
	local logf=$BUILD_LOG_DIR/kwok-$KWOK_VERSION.log tmp
	tmp=$(mktemp -d "$BIN_ROOT/.build-kwok.XXXXXX")
	log "building kwok $KWOK_VERSION with $GO_VERSION; log: $logf"
	if (cd "$tmp" && GOBIN=$tmp "${NICE[@]}" go install \
		-ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBE_VERSION" \
		"sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION") >"$logf" 2>&1; then
		install_from "$tmp" kwok
	else
		fail kwok "$logf"
	fi
	rm -rf "$tmp"
}

build_helm() {
	if have helm; then
		log "helm $HELM_VERSION: cached in $(bin_dir helm)"
		return
	fi
	local logf=$BUILD_LOG_DIR/helm-$HELM_VERSION.log tmp gomod cg major minor
	tmp=$(mktemp -d "$BIN_ROOT/.build-helm.XXXXXX")
	log "building helm $HELM_VERSION with $GO_VERSION; log: $logf"
	# helm's default .Capabilities.KubeVersion comes from its own client-go (v0.X -> 1.X),
	# as its release Makefile does
	gomod=$(cd "$tmp" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" 2>>"$logf" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p') || true
	cg=$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "${gomod:-/dev/null}" 2>/dev/null || true)
	cg=${cg#v0.}
	minor=${cg%%.*}
	major=1
	local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.metadata="
	if [[ $minor =~ ^[0-9]+$ ]]; then
		local p
		for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
			ld+=" -X $p.k8sVersionMajor=$major -X $p.k8sVersionMinor=$minor"
		done
	fi
	if (cd "$tmp" && GOBIN=$tmp "${NICE[@]}" go install -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >>"$logf" 2>&1; then
		install_from "$tmp" helm
	else
		fail helm "$logf"
	fi
	rm -rf "$tmp"
}

targets=("$@")
((${#targets[@]})) || targets=(etcd kube kwok helm)
for t in "${targets[@]}"; do
	case $t in
	etcd | kube | kwok | helm) "build_$t" ;;
	*) die "unknown build target '$t' (etcd, kube, kwok, helm)" ;;
	esac
done

if ((${#failed[@]})); then
	printf '[cluster] error: could not build: %s\n' "${failed[@]}" >&2
	exit 1
fi
