#!/usr/bin/env bash
# Write a kubeconfig that authenticates as a ServiceAccount of the local control plane
# (a bound token from `kubectl create token`), so a process runs with exactly the RBAC
# rules bound to that account.
#
#   hack/cluster/sa-kubeconfig.sh NAMESPACE SERVICEACCOUNT OUTPUT [DURATION]
#
# DURATION defaults to 24h. The ServiceAccount must exist. Prints OUTPUT.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# >= 3)) || die "usage: $0 NAMESPACE SERVICEACCOUNT OUTPUT [DURATION]"
ns=$1 sa=$2 out=$3 duration=${4:-24h}
[[ -s $KUBECONFIG_PATH ]] || die "no admin kubeconfig at $KUBECONFIG_PATH; run 'make cluster' first"

kubectl_bin=$(bin_path kubectl)
[[ -x $kubectl_bin ]] || kubectl_bin=kubectl
token=$("$kubectl_bin" --kubeconfig "$KUBECONFIG_PATH" -n "$ns" create token "$sa" --duration "$duration")

mkdir -p "$(dirname "$out")"
umask 077
cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rwscaler-local
  cluster:
    server: https://$LISTEN_ADDR:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$CLUSTER_DIR/pki/ca.crt")
users:
- name: system:serviceaccount:$ns:$sa
  user:
    token: $token
contexts:
- name: $sa@rwscaler-local
  context:
    cluster: rwscaler-local
    user: system:serviceaccount:$ns:$sa
    namespace: $ns
current-context: $sa@rwscaler-local
EOF
echo "$out"
