#!/usr/bin/env bash
# Show the state of the local control plane: cached binaries, processes, health, nodes.
# Exits 0 when the plane is up and healthy, 1 otherwise.
set -uo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

echo "binaries ($BIN_ROOT):"
for n in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm; do
	p=$(bin_path "$n")
	if [[ -x $p ]]; then echo "  ok       $p"; else echo "  missing  $p"; fi
done

rc=0
echo "processes ($CLUSTER_DIR):"
for c in "${COMPONENTS[@]}"; do
	pid=$(cat "$CLUSTER_DIR/$c.pid" 2>/dev/null || true)
	if [[ -n $pid ]] && running "$pid"; then
		echo "  running  $c (pid $pid)"
	else
		echo "  stopped  $c"
		rc=1
	fi
done
((rc == 0)) || exit 1

PKI=$CLUSTER_DIR/pki
ready=$(curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
	"https://$LISTEN_ADDR:$APISERVER_PORT/readyz" 2>&1)
echo "kube-apiserver https://$LISTEN_ADDR:$APISERVER_PORT/readyz: $ready"
[[ $ready == ok ]] || exit 1
"$(bin_path kubectl)" --kubeconfig "$KUBECONFIG_PATH" get nodes -o wide || exit 1
echo "kubeconfig: $KUBECONFIG_PATH"
