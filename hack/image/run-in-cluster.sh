#!/usr/bin/env bash
# Run the operator image against the local control plane the way a kubelet would start it in a
# pod: the ServiceAccount's token, the cluster CA and the namespace mounted at
# /var/run/secrets/kubernetes.io/serviceaccount/, KUBERNETES_SERVICE_HOST/PORT set, no kubeconfig
# in the container, and the chart's restricted security context (read-only root filesystem,
# UID 65532, no capabilities, no privilege escalation, an emptyDir-like /tmp).
# kwok's nodes run no containers, so this is how the image runs "in" the local cluster.
#
#   hack/image/run-in-cluster.sh -n NAMESPACE -s SERVICEACCOUNT [--name CONTAINER] [--image REF] [--detach] -- ARGS...
#   hack/image/run-in-cluster.sh -n NAMESPACE --from-deployment NAME [--liveness-port P] [--metrics-port P] [--detach]
#   hack/image/run-in-cluster.sh --stop [--name CONTAINER]
#
# --from-deployment runs the pod a Deployment (the chart's) describes: its ServiceAccount, image
# and args, except that the liveness endpoint moves from 0.0.0.0:8080 to 127.0.0.1:P (default
# 18080) and the metrics endpoint from 0.0.0.0:8081 to 127.0.0.1:P (default 18081), since the
# container shares the host's network.
#
# Without --detach it runs in the foreground until stopped; with --detach it returns once the
# container started (`--stop` removes it and its mounted token).
# ARGS are the container's arguments (the image runs `rwscaler ARGS`, `run` by default), e.g. the chart
# Deployment's args. Stops the container on SIGINT/SIGTERM and removes the mounted token.
# shellcheck source=../cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../cluster/lib.sh"   # the plane's kubeconfig and kubectl
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns="" sa="" name="rwscaler-operator" image="" detach=0 stop=0 deployment="" liveness_port=18080 metrics_port=18081
while (($#)); do
	case $1 in
	--from-deployment) deployment=$2; shift 2 ;;
	--liveness-port) liveness_port=$2; shift 2 ;;
	--metrics-port) metrics_port=$2; shift 2 ;;
	--detach) detach=1; shift ;;
	--stop) stop=1; shift ;;
	-n | --namespace) ns=$2; shift 2 ;;
	-s | --service-account) sa=$2; shift 2 ;;
	--name) name=$2; shift 2 ;;
	--image) image=$2; shift 2 ;;
	--) shift; break ;;
	*) die "unknown argument $1 (usage: run-in-cluster.sh -n NS -s SA [--name N] [--image REF] -- ARGS...)" ;;
	esac
done
rundir=$IMAGE_CACHE/run/$name   # the "projected volume": token, ca.crt, namespace
if ((stop)); then
	"${PODMAN[@]}" rm --force --time 10 "$name" >/dev/null 2>&1 && log "stopped $name" || log "$name was not running"
	rm -rf "$rundir"
	exit 0
fi
[[ -s $KUBECONFIG_PATH ]] || die "the local control plane is not running: run \`make cluster\`"
kubectl=$(bin_path kubectl)
[[ -x $kubectl ]] || kubectl=kubectl
if [[ -n $deployment ]]; then
	[[ -n $ns ]] || die "--from-deployment needs -n NAMESPACE"
	pod=$("$kubectl" --kubeconfig "$KUBECONFIG_PATH" -n "$ns" get deployment "$deployment" -o json) ||
		die "no Deployment $ns/$deployment: install the chart first (helm install ...)"
	mapfile -t from < <(printf '%s' "$pod" | python3 -c '
import json, sys
port, metrics_port = sys.argv[1], sys.argv[2]
pod = json.load(sys.stdin)["spec"]["template"]["spec"]
container = pod["containers"][0]
args = list(container.get("args") or [])
for i, a in enumerate(args):
    if a == "--liveness" and i + 1 < len(args):
        args[i + 1] = f"http://127.0.0.1:{port}/healthz"
    elif a.startswith("--liveness="):
        args[i] = f"--liveness=http://127.0.0.1:{port}/healthz"
    elif a == "--metrics-address" and i + 1 < len(args):
        args[i + 1] = f"127.0.0.1:{metrics_port}"
print(pod.get("serviceAccountName") or "default")
print(container["image"])
print("\n".join(args))' "$liveness_port" "$metrics_port")
	sa=${from[0]}
	[[ -n $image ]] || image=${from[1]}
	set -- "${from[@]:2}"
fi
[[ -n $ns && -n $sa ]] || die "usage: run-in-cluster.sh -n NAMESPACE -s SERVICEACCOUNT [--name N] [--image REF] -- ARGS..."
if [[ -z $image ]]; then
	[[ -s $IMAGE_CACHE/ref ]] || die "no image built yet: run \`make image\`"
	image=$(cat "$IMAGE_CACHE/ref")
fi
server=$("$kubectl" --kubeconfig "$KUBECONFIG_PATH" config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
hostport=${server#https://}
host=${hostport%:*} port=${hostport##*:}

rm -rf "$rundir" && mkdir -p "$rundir"
cleanup() {
	"${PODMAN[@]}" rm --force --time 5 "$name" >/dev/null 2>&1 || true
	rm -rf "$rundir"
}
if ((!detach)); then
	trap cleanup EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
fi
# What a kubelet projects into the pod: a bound token (here: 2 hours), the CA, the namespace.
"$kubectl" --kubeconfig "$KUBECONFIG_PATH" -n "$ns" create token "$sa" --duration 2h >"$rundir/token"
"$kubectl" --kubeconfig "$KUBECONFIG_PATH" config view --raw --minify \
	-o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$rundir/ca.crt"
printf '%s' "$ns" >"$rundir/namespace"
chmod 0755 "$rundir" && chmod 0644 "$rundir"/*

"${PODMAN[@]}" rm --force "$name" >/dev/null 2>&1 || true
log "running $image as $ns/$sa against $server (container $name)"
mode=()
((detach)) && mode=(--detach)
"${PODMAN[@]}" run "${mode[@]}" --rm --name "$name" --network host "${ULIMITS[@]}" \
	--read-only --tmpfs /tmp:rw,size=64m,mode=1777 \
	--user 65532:65532 --cap-drop ALL --security-opt no-new-privileges \
	-e KUBERNETES_SERVICE_HOST="$host" -e KUBERNETES_SERVICE_PORT="$port" \
	-e POD_NAME="$name" -e POD_NAMESPACE="$ns" \
	-v "$rundir:/var/run/secrets/kubernetes.io/serviceaccount:ro" \
	"$image" "$@" >&2 &
if ((detach)); then
	wait $! || die "podman run failed"
	log "started $name; logs: podman logs -f $name (with ${PODMAN[*]:1}); stop: make image-stop"
	exit 0
fi
wait $!
