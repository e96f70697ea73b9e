# The PostgreSQL test setup (tests/support/pgenv.py): PostgreSQL 15 primary + streaming
# replicas, PgBouncer, postgres_exporter, the PgBouncer exporter and Prometheus, all
# started by the tests as local processes on 127.0.0.1. See docs/testing-postgres.md.

.PHONY: pgenv-deps
pgenv-deps: ## Install PostgreSQL 15, PgBouncer, Prometheus and the exporters (Debian packages; no services left running)
	bash hack/pgenv/install.sh

.PHONY: pgenv-deps-mysql
pgenv-deps-mysql: ## pgenv-deps plus MariaDB and prometheus-mysqld-exporter
	bash hack/pgenv/install.sh --mysql

.PHONY: test-postgres
test-postgres: venv pgenv-deps ## Run the tests against real PostgreSQL/PgBouncer/Prometheus (tests/integration/postgres)
	$(PY) -m pytest tests/integration/postgres -q

.PHONY: pgenv-metrics
pgenv-metrics: venv pgenv-deps ## Start the PostgreSQL setup once and print every exporter's metric families
	$(PY) -m tests.support.pgenv_dump
