# The operator image (Dockerfile), built with podman on a base made from Debian packages
# (docs/image.md). Nothing here needs a registry or a Docker engine, except kind-e2e.

.PHONY: image-deps image image-size image-run kind-e2e

image-deps: ## Install podman, buildah, runc and mmdebstrap (Debian packages)
	@bash hack/image/deps.sh

image: image-deps ## Build the operator image (cached by the hash of its inputs); prints its reference
	@bash hack/image/build.sh

image-size: image ## The image's size and what dominates it
	@bash hack/image/size.sh

image-run: image ## Run the image against the local control plane as the chart's ServiceAccount (NS=rwscaler-system SA=rwscaler ARGS=...)
	@bash hack/image/run-in-cluster.sh -n "$(or $(NS),rwscaler-system)" -s "$(or $(SA),rwscaler)" -- \
	  $(or $(ARGS),--liveness http://127.0.0.1:18080/healthz)

kind-e2e: ## On a machine with Docker and kind: kind cluster, image, chart, and the e2e checks (untested here)
	@bash hack/kind/e2e.sh
