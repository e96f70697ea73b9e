# rwscaler's PgBouncer pooler (docs/pgbouncer.md) against real PostgreSQL 15 + PgBouncer 1.18
# (the shared setup of mk/pgenv.mk). -s shows the scale-in numbers: reads made, failed, drain time.
.PHONY: test-pgbouncer
test-pgbouncer: venv pgenv-deps ## The PgBouncer routing/drain tests, printing the scale-in numbers (also part of test-postgres)
	$(PY) -m pytest tests/unit/test_pgbouncer_render.py tests/unit/test_pgbouncer_router.py \
	  tests/integration/postgres/test_pgbouncer_routing.py -q -s
