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
# KIND_KEEP=1 keeps the cluster afterwards.
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
KUBECONFIG=$kubeconfig RWSCALER_E2E_TARGET=kind RWSCALER_E2E_LISTEN_HOST=$gateway \
	RWSCALER_E2E_IMAGE_REPOSITORY=${image%:*} RWSCALER_E2E_IMAGE_TAG=$version \
	RWSCALER_E2E_HELM=$(command -v helm) \
	.venv/bin/python -m pytest tests/e2e -v
