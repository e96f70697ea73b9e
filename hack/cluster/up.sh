#!/usr/bin/env bash
# Start the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok and its fake nodes) on 127.0.0.1 from the cached binaries.
# Idempotent: a healthy plane is left alone; a broken one is stopped and started afresh.
# Returns once /readyz is ok, every fake node is Ready and the `default` ServiceAccount
# exists in the `default` namespace.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

START_TIMEOUT=${CLUSTER_START_TIMEOUT:-120}   # seconds, per wait
PKI=$CLUSTER_DIR/pki
LOGS=$CLUSTER_DIR/logs
KUBECTL=$(bin_path kubectl)

lock cluster
export CLUSTER_LOCK_HELD=$$   # for down.sh, run from here

for n in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl; do
	[[ -x $(bin_path "$n") ]] || die "$(bin_path "$n") is missing; run 'make cluster-build' first"
done

kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" --request-timeout=10s "$@"; }

pid_of() { [[ -s $CLUSTER_DIR/$1.pid ]] && cat "$CLUSTER_DIR/$1.pid"; }
alive() {
	local pid
	pid=$(pid_of "$1") || return 1
	running "$pid"
}

readyz() {
	[[ $(curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
		"https://$LISTEN_ADDR:$APISERVER_PORT/readyz" 2>/dev/null) == ok ]]
}

nodes_ready() {
	local want=$CLUSTER_NODES got
	got=$(kc get nodes -l rwscaler.local/fake-node=true \
		-o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null |
		grep -c '^True$' || true)
	((got >= want))
}

default_sa() { kc -n default get serviceaccount default -o name >/dev/null 2>&1; }

healthy() {
	local c
	for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
	readyz && nodes_ready && default_sa
}

# wait_for WHAT COMPONENT CHECK...: poll CHECK until it succeeds, or fail with the log's tail
wait_for() {
	local what=$1 comp=$2 deadline=$((SECONDS + START_TIMEOUT))
	shift 2
	until "$@"; do
		if [[ -n $comp ]] && ! alive "$comp"; then
			echo "--- last lines of $LOGS/$comp.log" >&2
			tail -n 25 "$LOGS/$comp.log" >&2 || true
			die "$comp exited while waiting for $what (log: $LOGS/$comp.log)"
		fi
		if ((SECONDS >= deadline)); then
			[[ -n $comp ]] && { echo "--- last lines of $LOGS/$comp.log" >&2; tail -n 25 "$LOGS/$comp.log" >&2 || true; }
			die "timed out after ${START_TIMEOUT}s waiting for $what"
		fi
		sleep 0.5
	done
}

port_free() { [[ -z $(ss -Htln "sport = :$1") ]]; }

# start NAME ARGS...: run the binary detached (own session, so make or a closed terminal
# does not take it down), stdout+stderr to logs/NAME.log, pid to NAME.pid
start() {
	local name=$1
	shift
	: >"$LOGS/$name.log"
	setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$CLUSTER_DIR/$name.pid" \
		"$(bin_path "$name")" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
	local i
	for i in $(seq 50); do [[ -s $CLUSTER_DIR/$name.pid ]] && break; sleep 0.1; done
	log "started $name (pid $(pid_of "$name"), log $LOGS/$name.log)"
}

http_ok() { curl -fsS --max-time 3 "$1" >/dev/null 2>&1; }
https_ok() { curl -fsSk --max-time 3 "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------------------------------

if [[ -d $CLUSTER_DIR ]] && ls "$CLUSTER_DIR"/*.pid >/dev/null 2>&1; then
	if healthy; then
		log "already up and healthy (kube-apiserver https://$LISTEN_ADDR:$APISERVER_PORT)"
		log "kubeconfig: $KUBECONFIG_PATH"
		exit 0
	fi
	log "a previous control plane is present but not healthy; stopping it and starting afresh"
	"$CLUSTER_HACK_DIR/down.sh"
fi

for p in $ETCD_CLIENT_PORT $ETCD_PEER_PORT $APISERVER_PORT $CONTROLLER_MANAGER_PORT $SCHEDULER_PORT $KWOK_PORT; do
	port_free "$p" || die "port $LISTEN_ADDR:$p is already in use by another process ($(ss -Htlnp "sport = :$p" | head -1)); stop it or run 'make cluster-down'"
done

t0=$SECONDS
mkdir -p "$CLUSTER_DIR" "$LOGS"
# a failed start stops whatever it started and keeps the logs for a look
trap 'rc=$?; if ((rc != 0)); then log "start failed; stopping the processes started so far (logs kept in $LOGS)"; "$CLUSTER_HACK_DIR/down.sh" --keep-state >&2 || true; fi' EXIT
"$CLUSTER_HACK_DIR/certs.sh"

# --- etcd ---------------------------------------------------------------------------------
etcd_extra=()
# throw-away data: skip fsync where the etcd has the flag (3.5 has, Debian's 3.4 fallback not)
if "$(bin_path etcd)" --help 2>&1 | grep -c -- --unsafe-no-fsync >/dev/null; then
	etcd_extra+=(--unsafe-no-fsync=true)
fi
start etcd "${etcd_extra[@]}" \
	--name=rwscaler \
	--data-dir="$CLUSTER_DIR/etcd-data" \
	--listen-client-urls="http://$LISTEN_ADDR:$ETCD_CLIENT_PORT" \
	--advertise-client-urls="http://$LISTEN_ADDR:$ETCD_CLIENT_PORT" \
	--listen-peer-urls="http://$LISTEN_ADDR:$ETCD_PEER_PORT" \
	--initial-advertise-peer-urls="http://$LISTEN_ADDR:$ETCD_PEER_PORT" \
	--initial-cluster="rwscaler=http://$LISTEN_ADDR:$ETCD_PEER_PORT" \
	--initial-cluster-state=new \
	--quota-backend-bytes=2147483648 \
	--logger=zap \
	--log-level=warn
wait_for "etcd health" etcd http_ok "http://$LISTEN_ADDR:$ETCD_CLIENT_PORT/health"

# --- kube-apiserver ---------------------------------------------------------------------
# Admission: the default plugin set of 1.33 plus NodeRestriction, as kubeadm configures it.
# The `kubernetes` Service's endpoints are not reconciled: its only address would be
# 127.0.0.1, which an Endpoints/EndpointSlice may not hold, and nothing in this plane dials it.
start kube-apiserver \
	--bind-address="$LISTEN_ADDR" \
	--advertise-address="$LISTEN_ADDR" \
	--secure-port="$APISERVER_PORT" \
	--etcd-servers="http://$LISTEN_ADDR:$ETCD_CLIENT_PORT" \
	--tls-cert-file="$PKI/apiserver.crt" \
	--tls-private-key-file="$PKI/apiserver.key" \
	--client-ca-file="$PKI/ca.crt" \
	--kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
	--kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
	--kubelet-preferred-address-types=InternalIP \
	--requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
	--requestheader-allowed-names=front-proxy-client \
	--requestheader-username-headers=X-Remote-User \
	--requestheader-group-headers=X-Remote-Group \
	--requestheader-extra-headers-prefix=X-Remote-Extra- \
	--proxy-client-cert-file="$PKI/front-proxy-client.crt" \
	--proxy-client-key-file="$PKI/front-proxy-client.key" \
	--authorization-mode=Node,RBAC \
	--enable-admission-plugins=NodeRestriction \
	--allow-privileged=true \
	--service-cluster-ip-range="$SERVICE_CIDR" \
	--service-account-issuer="https://kubernetes.default.svc.cluster.local" \
	--service-account-key-file="$PKI/sa.pub" \
	--service-account-signing-key-file="$PKI/sa.key" \
	--endpoint-reconciler-type=none \
	--profiling=false \
	--v=1
wait_for "kube-apiserver /readyz" kube-apiserver readyz

# --- kube-controller-manager ----------------------------------------------------------------
start kube-controller-manager \
	--kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
	--authentication-kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
	--authorization-kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
	--bind-address="$LISTEN_ADDR" \
	--secure-port="$CONTROLLER_MANAGER_PORT" \
	--leader-elect=false \
	--controllers='*' \
	--use-service-account-credentials=true \
	--service-account-private-key-file="$PKI/sa.key" \
	--root-ca-file="$PKI/ca.crt" \
	--cluster-signing-cert-file="$PKI/ca.crt" \
	--cluster-signing-key-file="$PKI/ca.key" \
	--cluster-name=rwscaler-local \
	--allocate-node-cidrs=true \
	--cluster-cidr="$CLUSTER_CIDR" \
	--node-cidr-mask-size=24 \
	--service-cluster-ip-range="$SERVICE_CIDR" \
	--profiling=false \
	--v=1

# --- kube-scheduler -----------------------------------------------------------------------
start kube-scheduler \
	--kubeconfig="$CLUSTER_DIR/scheduler.kubeconfig" \
	--authentication-kubeconfig="$CLUSTER_DIR/scheduler.kubeconfig" \
	--authorization-kubeconfig="$CLUSTER_DIR/scheduler.kubeconfig" \
	--bind-address="$LISTEN_ADDR" \
	--secure-port="$SCHEDULER_PORT" \
	--leader-elect=false \
	--profiling=false \
	--v=1

# --- kwok: the kubelet of every node annotated kwok.x-k8s.io/node=fake ------------------------
start kwok \
	--kubeconfig="$CLUSTER_DIR/kwok.kubeconfig" \
	--config="$CLUSTER_HACK_DIR/kwok-stages.yaml" \
	--manage-all-nodes=false \
	--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
	--node-lease-duration-seconds=40 \
	--node-ip="$NODE_IP_PREFIX.9" \
	--cidr="${CLUSTER_CIDR%.*.*}.255.0/24" \
	--server-address="$LISTEN_ADDR:$KWOK_PORT"

wait_for "kube-controller-manager /healthz" kube-controller-manager https_ok "https://$LISTEN_ADDR:$CONTROLLER_MANAGER_PORT/healthz"
wait_for "kube-scheduler /healthz" kube-scheduler https_ok "https://$LISTEN_ADDR:$SCHEDULER_PORT/healthz"
wait_for "kwok /healthz" kwok http_ok "http://$LISTEN_ADDR:$KWOK_PORT/healthz"

# --- fake nodes ---------------------------------------------------------------------------
net=${CLUSTER_CIDR%.*.*}
nodes_yaml=$CLUSTER_DIR/nodes.yaml
: >"$nodes_yaml"
for ((i = 0; i < CLUSTER_NODES; i++)); do
	cat >>"$nodes_yaml" <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME_PREFIX$i
  annotations:
    kwok.x-k8s.io/node: fake
    rwscaler.local/fake-ip: $NODE_IP_PREFIX.$((10 + i))
  labels:
    rwscaler.local/fake-node: "true"
    type: kwok
    kubernetes.io/hostname: $NODE_NAME_PREFIX$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    topology.kubernetes.io/zone: zone-$((i % 3))
spec:
  podCIDR: $net.$i.0/24
  podCIDRs: [$net.$i.0/24]
EOF
done
kc apply -f "$nodes_yaml" >/dev/null
wait_for "$CLUSTER_NODES fake nodes Ready" kwok nodes_ready
wait_for "ServiceAccount default/default" kube-controller-manager default_sa

log "up in $((SECONDS - t0))s: kube-apiserver https://$LISTEN_ADDR:$APISERVER_PORT ($KUBE_VERSION), etcd $LISTEN_ADDR:$ETCD_CLIENT_PORT, $CLUSTER_NODES kwok nodes"
log "kubeconfig: $KUBECONFIG_PATH"
log "  export KUBECONFIG=$KUBECONFIG_PATH"
