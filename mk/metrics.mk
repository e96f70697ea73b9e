# The observation layer (operator/rwscaler/metrics): its benchmark. See docs/metrics.md.

.PHONY: bench-observe
bench-observe: venv pgenv-deps ## Observe 10, 100, 1000 synthetic workloads through a real Prometheus: queries, wall time, peak RSS
	$(PY) tools/bench_observe.py
