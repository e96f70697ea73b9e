#!/usr/bin/env bash
# `make kind-e2e`: the e2e tier (tests/e2e) against a kind cluster, on a machine with Docker,
# kind, kubectl and helm on PATH. UNTESTED where this repository is developed (no Docker engine).
#
# 1. a kind cluster (KIND_CLUSTER, default rwscaler-e2e; kept if it exists)
# 2. the image, built with Docker from the Dockerfile and loaded into kind
# 3. pytest tests/e2e with RWSCALER_E2E_TARGET=kind: the tests install the chart with helm (the
#    Deployment really runs the image) and run the same checks as on the local control plane.
#    The test's Prometheus and exporter listen on the host's address on kind's Docker network,
#    so the operator's pod can reach them.
# 4. CloudNativePG (issue 11): the real CloudNativePG from its release manifest (CNPG_VERSION,
#    default 1.30.0), a Cluster `orders` with 3 instances, an in-cluster Prometheus scraping the
#    instances' exporters (:9187, `metrics`), the chart, read and write load with pgbench, and the
#    checks of tests/integration/cluster/test_cnpg_end_to_end.py against the real thing:
#    rwscaler observes, scales spec.instances through /scale, publishes exactly the lag-qualified
#    replicas (never the primary), a replica whose replay is paused leaves the slice, and on
#    scale-in the instance CloudNativePG removes (findDeletableInstance: the Ready non-primary
#    pod with the highest serial) is out of the slice before /scale changes.
# KIND_KEEP=1 keeps the cluster afterwards; E2E_PYTEST=0 skips step 3, CNPG_E2E=0 step 4.
set -euo pipefail
cd "$(dirname "$0")/../.."
cluster=${KIND_CLUSTER:-rwscaler-e2e}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)
image=rwscaler-e2e:$version
for tool in docker kind kubectl helm; do
	command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is not on PATH" >&2; exit 1; }
done
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
kubeconfig=$(mktemp)
trap 'rm -f "$kubeconfig"; [[ ${KIND_KEEP:-0} == 1 ]] || kind delete cluster --name "$cluster"' EXIT
kind get kubeconfig --name "$cluster" >"$kubeconfig"
docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"
# The host's address on kind's network: the pods reach the test's Prometheus there.
gateway=$(docker network inspect kind -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' | awk '{print $1}')
make venv
if [[ ${E2E_PYTEST:-1} == 1 ]]; then
	KUBECONFIG=$kubeconfig RWSCALER_E2E_TARGET=kind RWSCALER_E2E_LISTEN_HOST=$gateway \
		RWSCALER_E2E_IMAGE_REPOSITORY=${image%:*} RWSCALER_E2E_IMAGE_TAG=$version \
		RWSCALER_E2E_HELM=$(command -v helm) \
		.venv/bin/python -m pytest tests/e2e -v
fi
[[ ${CNPG_E2E:-1} == 1 ]] || exit 0

# ---- 4. CloudNativePG ------------------------------------------------------------------------
cnpg_version=${CNPG_VERSION:-1.30.0}
cnpg_manifest=https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/release-${cnpg_version%.*}/releases/cnpg-${cnpg_version}.yaml
# CloudNativePG 1.30.0's default PostgreSQL image (pkg/versions/versions.go); pgbench runs from it too.
pg_image=${CNPG_PG_IMAGE:-ghcr.io/cloudnative-pg/postgresql:18.4-system-trixie}
prometheus_image=${PROMETHEUS_IMAGE:-quay.io/prometheus/prometheus:v2.53.4}
ns=rwscaler-cnpg-e2e
# Its own release and namespace: the e2e tests of step 3 delete rwscaler-system when they end.
release=rwscaler-cnpg
operator_ns=rwscaler-cnpg-system
slice=orders-read-rwscaler
selector=cnpg.io/cluster=orders,cnpg.io/podRole=instance

kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }
say() { echo "kind-e2e (CloudNativePG $cnpg_version): $*"; }
fail() {
	echo "kind-e2e (CloudNativePG $cnpg_version): FAILED: $*" >&2
	kc -n "$ns" get cluster,pods,endpointslices -o wide >&2 || true
	kc -n "$ns" get readwriteworkload orders -o yaml >&2 || true
	kc -n "$operator_ns" logs "deploy/$release" --tail=80 >&2 || true
	exit 1
}
# poll WHAT SECONDS CMD...: run CMD every 2 s until it succeeds; fail naming WHAT at the deadline.
poll() {
	local what=$1 limit=$2 deadline
	shift 2
	deadline=$((SECONDS + limit))
	until "$@"; do
		((SECONDS < deadline)) || fail "timed out after ${limit}s waiting for $what"
		sleep 2
	done
	say "$what"
}
# json_ok EXPR: read JSON from stdin as `d`; succeed when the Python expression is true.
json_ok() { .venv/bin/python -c "import json, sys; d = json.load(sys.stdin); sys.exit(0 if ($1) else 1)"; }
words() { tr ' ' '\n' | sed '/^$/d' | sort | tr '\n' ' ' | sed 's/ $//'; }
instances_spec() { kc -n "$ns" get cluster orders -o jsonpath='{.spec.instances}'; }
instances_are() { [[ $(instances_spec) == "$1" ]]; }
primary() { kc -n "$ns" get cluster orders -o jsonpath='{.status.currentPrimary}'; }
replicas() { kc -n "$ns" get pods -l "$selector,cnpg.io/instanceRole=replica" -o jsonpath='{.items[*].metadata.name}' | words; }
slice_pods() { kc -n "$ns" get endpointslice "$slice" -o jsonpath='{.endpoints[*].targetRef.name}' 2>/dev/null | words; }
# slice_is NAMES: the slice lists exactly NAMES; the primary in it fails the run at once.
slice_is() {
	local now
	now=$(slice_pods)
	[[ " $now " != *" $(primary) "* ]] || fail "the primary $(primary) is in the read slice: $now"
	[[ $now == "$1" ]]
}
all_replicas_but() { replicas | tr ' ' '\n' | grep -vx "${1:-}" | tr '\n' ' ' | sed 's/ $//'; }
# slice_is_replicas_but [NAME]: the slice lists every pod labelled replica (but NAME), read anew each time.
slice_is_replicas_but() {
	local want
	want=$(all_replicas_but "${1:-}")
	slice_is "$want"
}
replica_count_is() { [[ $(replicas | wc -w) == "$1" ]]; }
psql_on() { kc -n "$ns" exec "$1" -c postgres -- psql -U postgres -tAc "$2"; }
observed() {
	kc -n "$ns" get readwriteworkload orders -o json | json_ok \
		'(o := d.get("status", {}).get("observed", {})).get("readQPS", "unknown") != "unknown"
		and len(o.get("replicas", [])) >= 2
		and all(r.get("lag", "unknown") != "unknown" for r in o["replicas"])'
}
ready_instances_are() { [[ $(kc -n "$ns" get cluster orders -o jsonpath='{.status.readyInstances}') == "$1" ]]; }
# CloudNativePG's findDeletableInstance: the Ready, active, non-primary pod with the highest serial.
sacrificial() {
	kc -n "$ns" get pods -l "$selector" -o json | .venv/bin/python -c '
import json, sys
pods = json.load(sys.stdin)["items"]
def ok(p):
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    labels = p["metadata"].get("labels", {})
    role = labels.get("role") or labels.get("cnpg.io/instanceRole")
    active = p["status"].get("phase") not in ("Pending", "Succeeded", "Failed") and not p["metadata"].get("deletionTimestamp")
    return ready and active and role != "primary"
best = max((p for p in pods if ok(p)), key=lambda p: int(p["metadata"]["annotations"]["cnpg.io/nodeSerial"]))
print(best["metadata"]["name"])'
}
pod_gone() { ! kc -n "$ns" get pod "$1" >/dev/null 2>&1; }
# doomed_gone: the pod CloudNativePG removes is gone; while it exists after /scale went to 3 it must
# be out of the slice (rwscaler drains it before scaling).
doomed_gone() {
	if [[ $(instances_spec) == 3 && " $(slice_pods) " == *" $doomed "* ]]; then
		fail "$doomed (CloudNativePG removes it) is still in the slice after /scale went to 3"
	fi
	pod_gone "$doomed"
}
pgbench_deployment() { # NAME HOST ARGS...: pgbench as the app user (CloudNativePG's orders-app secret)
	local name=$1 host=$2
	shift 2
	local args
	args=$(printf '"%s", ' "$@")
	kc -n "$ns" apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $name}
spec:
  selector: {matchLabels: {app: $name}}
  template:
    metadata: {labels: {app: $name}}
    spec:
      containers:
        - name: pgbench
          image: $pg_image
          command: ["pgbench", ${args%, }]
          env:
            - {name: PGHOST, value: $host}
            - {name: PGDATABASE, valueFrom: {secretKeyRef: {name: orders-app, key: dbname}}}
            - {name: PGUSER, valueFrom: {secretKeyRef: {name: orders-app, key: user}}}
            - {name: PGPASSWORD, valueFrom: {secretKeyRef: {name: orders-app, key: password}}}
EOF
}

say "installing $cnpg_manifest"
kc apply --server-side -f "$cnpg_manifest"
kc -n cnpg-system rollout status deployment/cnpg-controller-manager --timeout=300s
kc create namespace "$ns" --dry-run=client -o yaml | kc apply -f -

# Prometheus in the cluster, scraping every instance's `metrics` port with pod and namespace labels.
kc -n "$ns" apply -f - <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: prometheus}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: prometheus}
rules:
  - {apiGroups: [""], resources: [pods], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: prometheus}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: prometheus}
subjects: [{kind: ServiceAccount, name: prometheus, namespace: $ns}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: prometheus}
data:
  prometheus.yml: |
    global: {scrape_interval: 5s}
    scrape_configs:
      - job_name: cnpg
        kubernetes_sd_configs: [{role: pod, namespaces: {names: [$ns]}}]
        relabel_configs:
          - {source_labels: [__meta_kubernetes_pod_label_cnpg_io_podRole], regex: instance, action: keep}
          - {source_labels: [__meta_kubernetes_pod_container_port_name], regex: metrics, action: keep}
          - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
          - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus}
spec:
  selector: {matchLabels: {app: prometheus}}
  template:
    metadata: {labels: {app: prometheus}}
    spec:
      serviceAccountName: prometheus
      containers:
        - name: prometheus
          image: $prometheus_image
          args: [--config.file=/etc/prometheus/prometheus.yml, --storage.tsdb.path=/prometheus]
          ports: [{name: web, containerPort: 9090}]
          volumeMounts:
            - {name: config, mountPath: /etc/prometheus}
            - {name: data, mountPath: /prometheus}
      volumes:
        - {name: config, configMap: {name: prometheus}}
        - {name: data, emptyDir: {}}
---
apiVersion: v1
kind: Service
metadata: {name: prometheus}
spec:
  selector: {app: prometheus}
  ports: [{name: web, port: 9090, targetPort: web}]
EOF

kc -n "$ns" apply -f - <<EOF
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {name: orders}
spec:
  instances: 3
  imageName: $pg_image
  storage: {size: 1Gi}
EOF
kc -n "$ns" wait --for=condition=Ready cluster/orders --timeout=900s
kc -n "$ns" rollout status deployment/prometheus --timeout=300s

# CloudNativePG itself, as rwscaler relies on it: /scale with its selector, role labels.
kc get --raw "/apis/postgresql.cnpg.io/v1/namespaces/$ns/clusters/orders/scale" | json_ok \
	'd["spec"]["replicas"] == 3 and d["status"]["replicas"] == 3
	and d["status"]["selector"] == "cnpg.io/cluster=orders,cnpg.io/podRole=instance"' ||
	fail "the Cluster's /scale: $(kc get --raw "/apis/postgresql.cnpg.io/v1/namespaces/$ns/clusters/orders/scale")"
first_primary=$(primary)
[[ $(kc -n "$ns" get pod "$first_primary" -o jsonpath='{.metadata.labels.cnpg\.io/instanceRole}') == primary ]] ||
	fail "$first_primary is status.currentPrimary but not labelled cnpg.io/instanceRole=primary"
[[ $(replicas | wc -w) == 2 ]] || fail "expected 2 replicas labelled cnpg.io/instanceRole=replica: $(replicas)"

# Load: 120 reads/s on the replicas (orders-ro), 10 writes/s on the primary (orders-rw).
kc -n "$ns" delete job pgbench-init --ignore-not-found
kc -n "$ns" apply -f - <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: pgbench-init}
spec:
  backoffLimit: 5
  template:
    spec:
      restartPolicy: OnFailure
      containers:
        - name: pgbench
          image: $pg_image
          command: [pgbench, -i, -s, "1"]
          env:
            - {name: PGHOST, value: orders-rw}
            - {name: PGDATABASE, valueFrom: {secretKeyRef: {name: orders-app, key: dbname}}}
            - {name: PGUSER, valueFrom: {secretKeyRef: {name: orders-app, key: user}}}
            - {name: PGPASSWORD, valueFrom: {secretKeyRef: {name: orders-app, key: password}}}
EOF
kc -n "$ns" wait --for=condition=Complete job/pgbench-init --timeout=300s
pgbench_deployment reads orders-ro -n -S -c 4 -j 2 -R 120 -T 86400
pgbench_deployment writes orders-rw -n -b simple-update -c 1 -R 10 -T 86400

say "installing the chart ($image)"
helm --kubeconfig "$kubeconfig" upgrade --install "$release" manifests/charts/rwscaler \
	-n "$operator_ns" --create-namespace --wait --timeout 180s \
	--set "image.repository=${image%:*}" --set "image.tag=$version" --set replicas=1
kc -n "$ns" apply -f - <<EOF
apiVersion: rwscaler.io/v1alpha1
kind: ReadWriteWorkload
metadata: {name: orders}
spec:
  replicas:
    scaleTargetRef: {apiVersion: postgresql.cnpg.io/v1, kind: Cluster, name: orders}
    minReplicas: 1
    maxReplicas: 3
    targetReadQPSPerReplica: 45
  prometheus: {url: "http://prometheus.$ns.svc:9090"}
  metrics: {preset: cnpg}
  objectives: {maxReplicationLag: 5s}
  pooler: {kind: EndpointSlice, readService: orders-read, drainTimeoutSeconds: 20}
  behavior:
    intervalSeconds: 5
    scaleUp: {stabilizationWindowSeconds: 0, maxStep: 1}
    # held until step 5: while Prometheus' rate window fills, the load reads low
    scaleDown: {stabilizationWindowSeconds: 3600, maxStep: 1}
  mode: Enforce
EOF

# 1. It observes: read QPS and every replica's lag known.
poll "status.observed: read QPS and every replica's lag known" 300 observed
# 2. 120 reads/s at 45 per replica: 3 read replicas, 4 instances, through /scale; CloudNativePG follows.
poll "spec.instances 4 (through /scale)" 300 instances_are 4
poll "4 ready instances" 600 ready_instances_are 4
poll "3 pods labelled replica" 120 replica_count_is 3
[[ $(primary) == "$first_primary" ]] || fail "the primary moved from $first_primary to $(primary)"
# 3. The slice: exactly the replicas (lag-qualified), never the primary.
poll "the EndpointSlice lists exactly the 3 replicas" 300 slice_is_replicas_but
# 4. Replay paused on one replica while the primary writes: it leaves the slice; resumed, it returns.
victim=$(replicas | cut -d' ' -f1)
psql_on "$victim" 'SELECT pg_wal_replay_pause()' >/dev/null
poll "$victim (replay paused) out of the EndpointSlice" 300 slice_is_replicas_but "$victim"
psql_on "$victim" 'SELECT pg_wal_replay_resume()' >/dev/null
poll "$victim back in the EndpointSlice" 300 slice_is_replicas_but
# 5. Load gone: scale-in; CloudNativePG's pick is drained before /scale changes.
doomed=$(sacrificial)
kc -n "$ns" patch readwriteworkload orders --type=merge -p '{"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}}}}'
kc -n "$ns" scale deployment/reads --replicas=0
poll "spec.instances 3 (scale-in through /scale)" 600 instances_are 3
poll "$doomed drained, then deleted by CloudNativePG" 300 doomed_gone
[[ $(primary) == "$first_primary" ]] || fail "the primary moved from $first_primary to $(primary)"
say "all checks passed"
kc -n "$ns" delete readwriteworkload orders --wait=true
helm --kubeconfig "$kubeconfig" uninstall "$release" -n "$operator_ns" --wait
kc delete namespace "$ns" --wait=false
