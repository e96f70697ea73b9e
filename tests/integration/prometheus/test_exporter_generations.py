"""The presets read every exporter generation people run, detected per series (issue 12, items 1-2).

The ControlledExporter serves, one generation at a time, the exact metric names of:

- the PgBouncer exporters (docs/metrics.md's table): Spreaker's PyPI exporter, the Go
  `pgbouncer_exporter` 0.11+ (`SHOW STATS_TOTALS`: `pgbouncer_stats_totals_*`), the same Go
  exporter 0.4-0.10 and CloudNativePG's Pooler; names taken from each exporter's source and
  release notes, not from the preset;
- mysqld_exporter's replica status before MySQL 8.4 (`seconds_behind_master`,
  `slave_io_running`) and from 8.4 with exporter 0.16+ (`seconds_behind_source`,
  `replica_io_running`).

Prometheus scrapes it and `PrometheusMetricsSource` reads the same signals from each: the same
rates and latencies for every PgBouncer generation, and lag known with either replica-status
name set, unknown when the IO thread is down.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from prom_helpers import PromEnv, SteadyCounters, pgbouncer, workload

from rwscaler.core.observation import UnknownReason
from rwscaler.metrics.prometheus import PrometheusMetricsSource

pytestmark = pytest.mark.timeout(120)

NS = "shop"
READ_QPS, WRITE_QPS = 80.0, 8.0
READ_MS, WRITE_MS = 2.0, 6.0  # query time (the pool wait included), per query

# (queries counter, server time counter, pool wait counter, seconds per counter unit)
GENERATIONS = {
    "spreaker-pypi": (
        "pgbouncer_stats_queries_total",
        "pgbouncer_stats_queries_duration_microseconds_total",
        "pgbouncer_stats_waiting_duration_microseconds_total",
        1e-6,
    ),
    "go-0.11+": (
        "pgbouncer_stats_totals_queries_pooled_total",
        "pgbouncer_stats_totals_queries_duration_seconds_total",
        "pgbouncer_stats_totals_client_wait_seconds_total",
        1.0,
    ),
    "go-0.4-0.10": (
        "pgbouncer_stats_queries_pooled_total",
        "pgbouncer_stats_queries_duration_seconds_total",
        "pgbouncer_stats_client_wait_seconds_total",
        1.0,
    ),
    "cnpg-pooler": (
        "cnpg_pgbouncer_stats_total_query_count",
        "cnpg_pgbouncer_stats_total_query_time",
        "cnpg_pgbouncer_stats_total_wait_time",
        1e-6,
    ),
}


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


@pytest.mark.parametrize("generation", list(GENERATIONS))
async def test_every_pgbouncer_exporter_generation_gives_the_same_signals(
    env: PromEnv, generation: str
) -> None:
    queries, server_time, wait_time, unit = GENERATIONS[generation]
    rates = {}
    for db, qps, ms in (("orders_ro", READ_QPS, READ_MS), ("orders", WRITE_QPS, WRITE_MS)):
        rates[key(queries, namespace=NS, database=db)] = qps
        # PgBouncer's query time is the whole latency a client sees, its wait for a server
        # connection (here a quarter of it) included: the wait counter is part of it, not added.
        rates[key(server_time, namespace=NS, database=db)] = qps * ms / 1000 / unit
        rates[key(wait_time, namespace=NS, database=db)] = qps * ms / 1000 * 0.25 / unit
    q = workload(env.prom.url, {"preset": "postgres"}, namespace=NS, pooler=pgbouncer("orders"), interval_s=2)
    source = PrometheusMetricsSource(min_rate_window_s=4, reuse_s=0)
    with SteadyCounters(env.exporter, rates):
        await asyncio.sleep(5.5)  # a full rate window of steady counters
        try:
            r = (await source.read([q], time.time()))[q.key]
        finally:
            await source.close()
    assert r.read_qps.value == pytest.approx(READ_QPS, rel=0.1), r.read_qps
    assert r.write_qps.value == pytest.approx(WRITE_QPS, rel=0.1), r.write_qps
    assert r.read_p99.value == pytest.approx(READ_MS / 1000, rel=0.1), r.read_p99
    assert r.write_p99.value == pytest.approx(WRITE_MS / 1000, rel=0.1), r.write_p99


REPLICA_STATUS = {
    "before-8.4": ("mysql_slave_status_seconds_behind_master", "mysql_slave_status_slave_io_running"),
    "8.4+": ("mysql_slave_status_seconds_behind_source", "mysql_slave_status_replica_io_running"),
}


@pytest.mark.parametrize("names", list(REPLICA_STATUS))
async def test_mysql_lag_is_read_with_either_replica_status_name_set(env: PromEnv, names: str) -> None:
    behind, io_running = REPLICA_STATUS[names]
    pods = ("orders-db-1", "orders-db-2")
    env.exporter.set(behind, {"namespace": NS, "pod": pods[0]}, 3.0)
    env.exporter.set(io_running, {"namespace": NS, "pod": pods[0]}, 1)
    # The IO thread of the second replica is down: Seconds_Behind reads 0 then, which is no lag.
    env.exporter.set(behind, {"namespace": NS, "pod": pods[1]}, 0.0)
    env.exporter.set(io_running, {"namespace": NS, "pod": pods[1]}, 0)
    env.settle()
    q = workload(
        env.prom.url,
        {"preset": "mysql"},
        namespace=NS,
        primary_set="orders-db",
        replica_set="orders-db",
        replica_pods=pods,
    )
    source = PrometheusMetricsSource(reuse_s=0)
    try:
        r = (await source.read([q], time.time()))[q.key]
    finally:
        await source.close()
    assert r.replica_lag[pods[0]].value == pytest.approx(3.0), r.replica_lag
    assert r.replica_lag[pods[1]].value is None
    assert r.replica_lag[pods[1]].reason is UnknownReason.EMPTY, r.replica_lag
