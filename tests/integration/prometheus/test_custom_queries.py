"""The `custom` preset against a real Prometheus: placeholders, values, per-replica lag."""

from __future__ import annotations

import time

import pytest
from prom_helpers import NAMESPACE, REPLICAS, PromEnv, SteadyCounters, custom_metrics, serve_healthy, workload

from rwscaler.core.observation import Aggregation, UnknownReason
from rwscaler.metrics.prometheus import PrometheusMetricsSource

pytestmark = pytest.mark.timeout(120)


async def test_custom_queries_read_every_signal(env: PromEnv) -> None:
    serve_healthy(env)
    rates = {
        ("app_queries_total", (("namespace", NAMESPACE), ("side", "read"))): 40.0,
        ("app_queries_total", (("namespace", NAMESPACE), ("side", "write"))): 4.0,
    }
    source = PrometheusMetricsSource(min_rate_window_s=4)
    q = workload(env.prom.url, custom_metrics(), interval_s=2)
    with SteadyCounters(env.exporter, rates):
        time.sleep(5)  # a full rate window of steady increments
        try:
            readings = await source.read([q], time.time())
        finally:
            await source.close()
    r = readings[q.key]
    assert r.read_qps.value == pytest.approx(40, rel=0.2), r.read_qps
    assert r.write_qps.value == pytest.approx(4, rel=0.2), r.write_qps
    assert r.read_p99.value == pytest.approx(0.012)
    assert r.write_p99.value == pytest.approx(0.004)
    # max(...) of a gauge is no histogram_quantile: flagged as an average stand-in.
    assert r.read_p99.aggregation is Aggregation.AVERAGE
    assert set(r.replica_lag) == set(REPLICAS)
    assert r.replica_lag[REPLICAS[0]].value == pytest.approx(0.25)
    assert r.replica_lag[REPLICAS[1]].value == pytest.approx(3.5)
    assert source.last_stats is not None and source.last_stats.queries == 5


async def test_missing_lag_of_one_replica_marks_only_that_replica(env: PromEnv) -> None:
    serve_healthy(env)
    env.exporter.remove("app_lag_seconds", {"namespace": NAMESPACE, "pod": REPLICAS[1]})
    env.settle()
    source = PrometheusMetricsSource()
    q = workload(env.prom.url, custom_metrics())
    try:
        r = (await source.read([q], time.time()))[q.key]
    finally:
        await source.close()
    assert r.replica_lag[REPLICAS[0]].value == pytest.approx(0.25)
    lag1 = r.replica_lag[REPLICAS[1]]
    assert lag1.value is None
    assert lag1.reason is UnknownReason.EMPTY
    assert "replicationLag" in lag1.message and REPLICAS[1] in lag1.message
