# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
# Shared settings of the local control plane; sourced by the scripts in hack/cluster.
# Everything listens on 127.0.0.1 only. Every port is fixed and uncommon so that tests
# know where to go and nothing collides with a normal cluster on the same machine; all are
# below Linux's ephemeral range (32768-60999), so a "free port" picked by binding port 0
# (tests/support/ports.py) or an outgoing connection can never take one of them.

CLUSTER_HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
. "$CLUSTER_HACK_DIR/versions.sh"

RWSCALER_CACHE=${RWSCALER_CACHE:-$HOME/.cache/rwscaler}
BIN_ROOT=$RWSCALER_CACHE/bin
BUILD_LOG_DIR=$RWSCALER_CACHE/build-logs
CLUSTER_DIR=$RWSCALER_CACHE/cluster       # runtime state: certs, etcd data, logs, pids
KUBECONFIG_PATH=$CLUSTER_DIR/kubeconfig   # admin kubeconfig (system:masters)

LISTEN_ADDR=127.0.0.1
ETCD_CLIENT_PORT=22379
ETCD_PEER_PORT=22380
APISERVER_PORT=26443
CONTROLLER_MANAGER_PORT=20257   # secure port (healthz, metrics)
SCHEDULER_PORT=20259            # secure port (healthz, metrics)
KWOK_PORT=20247                 # kwok's own server (healthz, metrics)

# Fake address ranges. No packet is ever sent to them: there is no kubelet, no kube-proxy,
# no CNI; kwok only writes these addresses into object status.
SERVICE_CIDR=10.213.0.0/16      # ClusterIPs
CLUSTER_CIDR=10.214.0.0/16      # pod IPs; node i gets 10.214.i.0/24
NODE_IP_PREFIX=10.215.0         # node i has InternalIP 10.215.0.(i+10)
CLUSTER_NODES=${CLUSTER_NODES:-3}
NODE_NAME_PREFIX=kwok-node-

# Processes in start order; each writes $CLUSTER_DIR/<name>.pid and $CLUSTER_DIR/logs/<name>.log
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

STAGING_VERSION=v0.${KUBE_VERSION#v1.}

# bin_dir NAME -> the versioned cache directory of a binary
bin_dir() {
	local v
	case $1 in
	etcd) v=$ETCD_VERSION ;;
	kwok) v=$KWOK_VERSION ;;
	helm) v=$HELM_VERSION ;;
	kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) v=$KUBE_VERSION ;;
	*)
		echo "bin_dir: unknown binary $1" >&2
		return 1
		;;
	esac
	echo "$BIN_ROOT/$1-$v"
}

# bin_path NAME -> the binary. CLUSTER_ETCD_BIN=/usr/bin/etcd selects another etcd, e.g. the
# documented fallback, Debian's etcd-server 3.4 (then `cluster-build` skips building etcd).
bin_path() {
	if [[ $1 == etcd && -n ${CLUSTER_ETCD_BIN:-} ]]; then
		echo "$CLUSTER_ETCD_BIN"
	else
		echo "$(bin_dir "$1")/$1"
	fi
}

# running PID: the process exists and is not a zombie waiting to be reaped
running() {
	local state
	kill -0 "$1" 2>/dev/null || return 1
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z && $state != X ]]
}

# ours EXE: whether an executable path is one of the binaries this plane runs
ours() { [[ $1 == "$BIN_ROOT"/* || $1 == "$(bin_path etcd)" ]]; }

# lock NAME: serialize with other runs of the scripts (two test sessions calling `make cluster`
# at once must not both start a plane). Held on fd 9 until the script exits; the daemons
# started under it must not inherit fd 9 (see up.sh).
lock() {
	mkdir -p "$RWSCALER_CACHE"
	exec 9>"$RWSCALER_CACHE/.$1.lock"
	if ! flock -n 9; then
		log "waiting for another $1 run to finish"
		flock 9
	fi
}

log() { printf '[cluster] %s\n' "$*"; }
die() {
	printf '[cluster] error: %s\n' "$*" >&2
	exit 1
}

# Go environment for every build: the local toolchain only, no cgo, no workspace.
go_env() {
	export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off GOFLAGS="-buildvcs=false -trimpath"
}
