# The operator (docs/operator.md): run it, install what it needs, and its cluster test tier.
OPERATOR_ARGS ?=

.PHONY: run operator-install test-cluster

run: venv ## Run the operator against the current kubeconfig (KUBECONFIG=..., OPERATOR_ARGS='-n shop')
	$(VENV)/bin/rwscaler run $(OPERATOR_ARGS)

operator-install: ## Apply the CRD and the operator's RBAC (manifests/rbac) with kubectl to the current kubeconfig
	kubectl apply -f crds/readwriteworkloads.rwscaler.io.yaml
	kubectl apply -f manifests/rbac/namespace.yaml
	kubectl apply -f manifests/rbac/

test-cluster: venv ## The operator's tests on the local control plane (skip, naming `make cluster`, when it is down)
	$(PY) -m pytest -m cluster tests/integration/cluster
