# shellcheck shell=bash
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

bin_path() { echo "$(bin_dir "$1")/$1"; }

log() { printf '[cluster] %s\n' "$*"; }
die() {
	printf '[cluster] error: %s\n' "$*" >&2
	exit 1
}

# Go environment for every build: the local toolchain only, no cgo, no workspace.
go_env() {
	export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off GOFLAGS="-buildvcs=false -trimpath"
}
