# The local Kubernetes control plane (docs/cluster.md). Binaries are built from Go modules
# into $(RWSCALER_CACHE)/bin/<name>-<version>/ once; state lives in $(RWSCALER_CACHE)/cluster/.
CLUSTER_HACK := hack/cluster
CLUSTER_KUBECONFIG := $(RWSCALER_CACHE)/cluster/kubeconfig

.PHONY: cluster-build cluster cluster-down cluster-status cluster-smoke cluster-kubeconfig cluster-sa-kubeconfig helm cluster-modules tools-path

cluster-build: ## Build (once, cached by version) etcd, kube-apiserver/-controller-manager/-scheduler, kubectl, kwok, helm
	@$(CLUSTER_HACK)/build.sh

cluster: cluster-build ## Start the local control plane on 127.0.0.1 (idempotent); kubeconfig in $RWSCALER_CACHE/cluster/kubeconfig
	@$(CLUSTER_HACK)/up.sh

cluster-down: ## Stop every control-plane process and remove its state (keeps the built binaries)
	@$(CLUSTER_HACK)/down.sh

cluster-status: ## Show the control plane's binaries, processes, health and nodes
	@$(CLUSTER_HACK)/status.sh

cluster-kubeconfig: ## Print the admin kubeconfig path (use: make -s cluster-kubeconfig)
	@echo $(CLUSTER_KUBECONFIG)

cluster-sa-kubeconfig: ## Kubeconfig for a ServiceAccount token: make cluster-sa-kubeconfig NS=ns SA=name OUT=file
	@test -n "$(NS)" -a -n "$(SA)" -a -n "$(OUT)" || { echo "usage: make cluster-sa-kubeconfig NS=<namespace> SA=<serviceaccount> OUT=<file> [DURATION=24h]" >&2; exit 2; }
	@$(CLUSTER_HACK)/sa-kubeconfig.sh "$(NS)" "$(SA)" "$(OUT)" "$(or $(DURATION),24h)"

helm: ## Build helm (once, cached) and print its path
	@$(CLUSTER_HACK)/build.sh helm >&2
	@. $(CLUSTER_HACK)/lib.sh && bin_path helm

tools-path: ## PATH entries for kubectl, helm (built by `make cluster`) and kubectl-rwscaler (.venv): export PATH="$(make -s tools-path):$PATH"
	@. $(CLUSTER_HACK)/lib.sh && printf '%s:%s:%s\n' "$$(bin_dir kubectl)" "$$(bin_dir helm)" "$(abspath $(VENV))/bin"

cluster-modules: ## Regenerate hack/cluster/{k8s,etcd}/go.{mod,sum} after a version bump in hack/cluster/versions.sh
	@$(CLUSTER_HACK)/gen-modules.sh

cluster-smoke: ## Check the running plane end to end (StatefulSet pods Ready with IPs, EndpointSlices, SA token, RBAC)
	@$(CLUSTER_HACK)/smoke.sh
