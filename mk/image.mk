# The operator image (Dockerfile), built with podman on a base made from Debian packages
# (docs/image.md). Nothing here needs a registry or a Docker engine, except kind-e2e.

.PHONY: image-deps image image-size image-run image-stop kind-e2e

image-deps: ## Install podman, buildah, runc and mmdebstrap (Debian packages)
	@bash hack/image/deps.sh

image: image-deps ## Build the operator image (cached by the hash of its inputs); prints its reference
	@bash hack/image/build.sh

image-size: image ## The image's size and what dominates it
	@bash hack/image/size.sh

image-run: image ## Run the pod the installed chart describes, in podman, on the local control plane (detached; RELEASE=rwscaler NS=rwscaler-system)
	@bash hack/image/run-in-cluster.sh --detach -n "$(or $(NS),rwscaler-system)" \
	  --from-deployment "$(or $(RELEASE),rwscaler)" --name "$(or $(RELEASE),rwscaler)-operator"

image-stop: ## Stop what `make image-run` started (RELEASE=rwscaler)
	@bash hack/image/run-in-cluster.sh --stop --name "$(or $(RELEASE),rwscaler)-operator"

kind-e2e: ## On a machine with Docker and kind: kind cluster, image, chart, and the e2e checks (untested here)
	@bash hack/kind/e2e.sh
