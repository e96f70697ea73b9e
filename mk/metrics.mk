# The observation layer (operator/rwscaler/metrics): its benchmark. See docs/metrics.md.

.PHONY: bench-observe
bench-observe: venv pgenv-deps ## Observe 10, 100, 1000 synthetic workloads through a real Prometheus: queries, wall time, peak RSS
	$(PY) tools/bench_observe.py

# The operator on the local control plane (docs/bench-operator.md). It holds the plane's lock
# (/tmp/rwscaler-plane.lock) for the whole run: the plane is shared by one user at a time.
BENCH_OPERATOR_SIZES ?= 100 1000
BENCH_OPERATOR_INTERVAL ?= 15
BENCH_OPERATOR_WINDOW ?= 120
BENCH_OPERATOR_REVISIONS ?= 25730ec HEAD
BENCH_OPERATOR_WARMUP ?= 300
# More flags of tools/bench_operator.py, e.g. --profile (where the operator's CPU goes).
BENCH_OPERATOR_ARGS ?=

.PHONY: bench-operator
bench-operator: venv pgenv-deps ## N workloads (BENCH_OPERATOR_SIZES) on the local control plane, before vs after (BENCH_OPERATOR_REVISIONS): CPU, RSS, API and Prometheus requests, tick lateness
	flock /tmp/rwscaler-plane.lock $(PY) tools/bench_operator.py --sizes "$(BENCH_OPERATOR_SIZES)" \
	  --interval $(BENCH_OPERATOR_INTERVAL) --window $(BENCH_OPERATOR_WINDOW) --warmup-timeout $(BENCH_OPERATOR_WARMUP) --revisions "$(BENCH_OPERATOR_REVISIONS)" $(BENCH_OPERATOR_ARGS)
