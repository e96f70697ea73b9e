# The exporters' metric names behind the presets (docs/metrics.md, "Exporter versions"): record
# every real exporter's /metrics into tests/fixtures/exporter-metrics/, which the unit test
# tests/unit/test_metric_names_contract.py checks every preset's metric names against.
# The exporters Debian 12 lacks (prometheus-community's pgbouncer_exporter, and postgres_exporter
# and mysqld_exporter newer than Debian's) are built once per version into
# $(RWSCALER_CACHE)/bin/<exporter>-<version>/; the Go module proxy refuses those modules here, so
# the build falls back to git clones named by PGBOUNCER_EXPORTER_GIT, POSTGRES_EXPORTER_GIT and
# MYSQLD_EXPORTER_GIT (hack/pgenv/build-go-exporters.sh).

.PHONY: go-exporters record-exporter-metrics

go-exporters: ## Build pgbouncer_exporter v0.10.2/v0.12.1, postgres_exporter v0.20.1, mysqld_exporter v0.20.0 once, cached (*_EXPORTER_GIT=<clone> if the Go proxy refuses)
	@bash hack/pgenv/build-go-exporters.sh

record-exporter-metrics: venv pgenv-deps-mysql ## Run the real exporters (Debian's, the Go ones, CloudNativePG's queries) on the beds; record their metric names in tests/fixtures/exporter-metrics
	@bash hack/pgenv/build-go-exporters.sh || echo "record-exporter-metrics: recording without the exporter versions that did not build (their dumps stay as they are)" >&2
	$(PY) tools/record_exporter_metrics.py
