#!/usr/bin/env bash
# Run the operator image against the local control plane the way a kubelet would start it in a
# pod: the ServiceAccount's token, the cluster CA and the namespace mounted at
# /var/run/secrets/kubernetes.io/serviceaccount/, KUBERNETES_SERVICE_HOST/PORT set, no kubeconfig
# in the container, and the chart's restricted security context (read-only root filesystem,
# UID 65532, no capabilities, no privilege escalation, an emptyDir-like /tmp).
# kwok's nodes run no containers, so this is how the image runs "in" the local cluster.
#
#   hack/image/run-in-cluster.sh -n NAMESPACE -s SERVICEACCOUNT [--name CONTAINER] [--image REF] -- ARGS...
#
# ARGS are the container's arguments (the image runs `rwscaler ARGS`, `run` by default), e.g. the chart
# Deployment's args. Stops the container on SIGINT/SIGTERM and removes the mounted token.
# shellcheck source=../cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../cluster/lib.sh"   # the plane's kubeconfig and kubectl
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns="" sa="" name="rwscaler-operator" image=""
while (($#)); do
	case $1 in
	-n | --namespace) ns=$2; shift 2 ;;
	-s | --service-account) sa=$2; shift 2 ;;
	--name) name=$2; shift 2 ;;
	--image) image=$2; shift 2 ;;
	--) shift; break ;;
	*) die "unknown argument $1 (usage: run-in-cluster.sh -n NS -s SA [--name N] [--image REF] -- ARGS...)" ;;
	esac
done
[[ -n $ns && -n $sa ]] || die "usage: run-in-cluster.sh -n NAMESPACE -s SERVICEACCOUNT [--name N] [--image REF] -- ARGS..."
if [[ -z $image ]]; then
	[[ -s $IMAGE_CACHE/ref ]] || die "no image built yet: run \`make image\`"
	image=$(cat "$IMAGE_CACHE/ref")
fi
[[ -s $KUBECONFIG_PATH ]] || die "the local control plane is not running: run \`make cluster\`"
kubectl=$(bin_path kubectl)
[[ -x $kubectl ]] || kubectl=kubectl

server=$("$kubectl" --kubeconfig "$KUBECONFIG_PATH" config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
hostport=${server#https://}
host=${hostport%:*} port=${hostport##*:}

sadir=$(mktemp -d "${TMPDIR:-/tmp}/rwscaler-sa.XXXXXX")
cleanup() {
	"${PODMAN[@]}" rm --force --time 5 "$name" >/dev/null 2>&1 || true
	rm -rf "$sadir"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
# What a kubelet projects into the pod: a bound token (here: 2 hours), the CA, the namespace.
"$kubectl" --kubeconfig "$KUBECONFIG_PATH" -n "$ns" create token "$sa" --duration 2h >"$sadir/token"
"$kubectl" --kubeconfig "$KUBECONFIG_PATH" config view --raw --minify \
	-o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$sadir/ca.crt"
printf '%s' "$ns" >"$sadir/namespace"
chmod 0755 "$sadir" && chmod 0644 "$sadir"/*

"${PODMAN[@]}" rm --force "$name" >/dev/null 2>&1 || true
log "running $image as $ns/$sa against $server (container $name)"
"${PODMAN[@]}" run --rm --name "$name" --network host "${ULIMITS[@]}" \
	--read-only --tmpfs /tmp:rw,size=64m,mode=1777 \
	--user 65532:65532 --cap-drop ALL --security-opt no-new-privileges \
	-e KUBERNETES_SERVICE_HOST="$host" -e KUBERNETES_SERVICE_PORT="$port" \
	-e POD_NAME="$name" -e POD_NAMESPACE="$ns" \
	-v "$sadir:/var/run/secrets/kubernetes.io/serviceaccount:ro" \
	"$image" "$@" &
wait $!
