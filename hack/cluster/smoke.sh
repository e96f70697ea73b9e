#!/usr/bin/env bash
# Check a running local control plane end to end, in a namespace of its own:
#   /version reports $KUBE_VERSION; a 2-replica StatefulSet gets 2 Running+Ready pods with
#   IPs on the fake nodes; the endpointslice controller lists them; a ServiceAccount with a
#   Role may create an EndpointSlice through a `kubectl create token` kubeconfig, and may
#   not do what the Role does not allow (RBAC); deleting the namespace cleans up.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K=$(bin_path kubectl)
[[ -s $KUBECONFIG_PATH ]] || die "no kubeconfig at $KUBECONFIG_PATH; run 'make cluster' first"
kc() { "$K" --kubeconfig "$KUBECONFIG_PATH" "$@"; }
ns=rwscaler-smoke-$$
work=$(mktemp -d)
trap 'kc delete namespace "$ns" --wait=false >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
ok() { printf '[smoke] ok: %s\n' "$*"; }
t0=$SECONDS

v=$(kc version -o json | sed -n '/"serverVersion"/,/}/s/.*"gitVersion": "\(.*\)".*/\1/p')
[[ $v == "$KUBE_VERSION" ]] || die "server version is '$v', expected $KUBE_VERSION"
ok "server version $v"

kc create namespace "$ns" >/dev/null
kc -n "$ns" apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: pg
        image: postgres:15
        ports: [{name: pg, containerPort: 5432}]
EOF
kc -n "$ns" rollout status statefulset/db --timeout=60s >/dev/null
kc -n "$ns" wait --for=condition=Ready pod/db-0 pod/db-1 --timeout=30s >/dev/null
pods=$(kc -n "$ns" get pods -l app=db -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase} {.status.podIP} {.spec.nodeName}{"\n"}{end}')
[[ $(grep -c ' Running 10\.' <<<"$pods") == 2 ]] || die "expected 2 Running pods with IPs, got: $pods"
ok "StatefulSet db: 2 pods Running and Ready: $(tr '\n' ';' <<<"$pods")"

deadline=$((SECONDS + 30))
until [[ $(kc -n "$ns" get endpointslices -l kubernetes.io/service-name=db \
	-o jsonpath='{range .items[*].endpoints[*]}{.addresses[0]}{"\n"}{end}' | grep -c .) == 2 ]]; do
	((SECONDS < deadline)) || die "the endpointslice controller did not list both pods"
	sleep 0.5
done
ok "endpointslice controller lists both pods of Service db"

kc -n "$ns" create serviceaccount smoke >/dev/null
kc -n "$ns" create role slices --verb=get,list,watch,create,update,patch,delete \
	--resource=endpointslices.discovery.k8s.io >/dev/null
kc -n "$ns" create rolebinding slices --role=slices --serviceaccount="$ns:smoke" >/dev/null
"$CLUSTER_HACK_DIR/sa-kubeconfig.sh" "$ns" smoke "$work/sa.kubeconfig" 10m >/dev/null
sa() { "$K" --kubeconfig "$work/sa.kubeconfig" "$@"; }
who=$(sa auth whoami -o jsonpath='{.status.userInfo.username}')
[[ $who == "system:serviceaccount:$ns:smoke" ]] || die "token authenticates as '$who'"
ok "kubectl create token: authenticated as $who"
ip=$(kc -n "$ns" get pod db-0 -o jsonpath='{.status.podIP}')
sa -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-read-smoke
  labels:
    kubernetes.io/service-name: db-read
    endpointslice.kubernetes.io/managed-by: smoke.rwscaler.local
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints:
- addresses: ["$ip"]
  conditions: {ready: true}
EOF
ok "the ServiceAccount created EndpointSlice db-read-smoke ($ip)"
if sa -n "$ns" get pods >/dev/null 2>&1; then die "RBAC: the ServiceAccount may list pods without a rule"; fi
ok "RBAC: the ServiceAccount may not list pods"

kc delete namespace "$ns" --timeout=60s >/dev/null
ok "namespace $ns deleted"
log "smoke test passed in $((SECONDS - t0))s"
