# The soak on the local control plane (docs/soak.md): one operator, workloads created and deleted
# for SOAK_MINUTES; memory, file descriptors and TCP connections sampled every 10 s. It holds the
# plane's lock (/tmp/rwscaler-plane.lock) for the whole run: the plane is shared by one user at a time.
SOAK_MINUTES ?= 60
SOAK_POPULATION ?= 20
SOAK_EVERY ?= 3

.PHONY: soak
soak: venv pgenv-deps ## Create and delete workloads for SOAK_MINUTES (60) under one operator: RSS, fds, TCP connections, asyncio tasks; first vs last quarter (build/soak.txt)
	flock /tmp/rwscaler-plane.lock $(PY) tools/soak.py --minutes $(SOAK_MINUTES) \
	  --population $(SOAK_POPULATION) --every $(SOAK_EVERY)

# The five-minute check with pass/fail criteria (docs/soak.md), also part of `make test`.
.PHONY: soak-check
soak-check: venv pgenv-deps ## Five minutes of soak with the pass/fail criteria of docs/soak.md (also in make test)
	flock /tmp/rwscaler-plane.lock $(PY) -m pytest tests/integration/cluster/test_cluster_soak.py -q -p no:cacheprovider
