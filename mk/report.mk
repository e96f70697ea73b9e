# The weekly workload report (docs/report.md).

.PHONY: report-deps
report-deps: ## Install Chromium (Debian) for the report test's headless screenshot
	@bash hack/report/deps.sh
