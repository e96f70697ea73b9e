# `make demo` (docs/demo.md): rwscaler at work on the local control plane, from a fresh clone.

.PHONY: demo
demo: venv ## Build what it needs, start the plane, Prometheus and a simulated database, install the chart, drive a read spike and a write surge, print what the operator does and why, write the report, tear down
	@$(PY) tools/demo.py $(DEMO_ARGS)
