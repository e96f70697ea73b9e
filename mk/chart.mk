# The Helm chart (docs/chart.md): manifests/charts/rwscaler. helm itself comes from `make helm`
# (mk/cluster.mk: built once from Go modules, cached in $(RWSCALER_CACHE)/bin).
CHART_DIR := manifests/charts/rwscaler
CHART_CRD := crds/readwriteworkloads.rwscaler.io.yaml

.PHONY: chart-crd manifests manifests-check chart-lint test-chart

chart-crd: ## Copy the generated CRD into the chart (manifests/charts/rwscaler/crds/)
	cp $(CHART_CRD) $(CHART_DIR)/crds/

manifests: venv chart-crd ## Render manifests/rbac/*.yaml and manifests/operator.yaml from the chart (helm template)
	$(PY) tools/render_manifests.py --helm "$$($(MAKE) -s --no-print-directory helm)"

manifests-check: venv ## Fail when manifests/ or the chart's CRD differ from a fresh rendering
	cmp $(CHART_CRD) $(CHART_DIR)/crds/$(notdir $(CHART_CRD))
	$(PY) tools/render_manifests.py --check --helm "$$($(MAKE) -s --no-print-directory helm)"

chart-lint: ## helm lint the chart with the default values and with watchNamespaces set
	@helm="$$($(MAKE) -s --no-print-directory helm)" && \
	  "$$helm" lint --strict $(CHART_DIR) && \
	  "$$helm" lint --strict $(CHART_DIR) --set 'watchNamespaces={team-a,team-b}'

test-chart: venv ## The chart's tests: lint, schema, snapshots, RBAC, and install/upgrade/uninstall on `make cluster`
	$(PY) -m pytest tests/integration/chart
