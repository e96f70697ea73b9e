"""exposition.py: the operator's own metrics, as docs/operator-metrics.md names them, read back
through prometheus_client's text format (what a scrape gets)."""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_reconcile import NAME, NS, READ_OBJECTIVE, make_world
from tests.support.ports import free_port

from rwscaler.exposition import OwnMetrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(own: OwnMetrics) -> Samples:
    text = generate_latest(own.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def of(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted({"namespace": NS, "name": NAME, **labels}.items()))))


def named(samples: Samples, name: str) -> list[tuple[tuple[str, str], ...]]:
    return [labels for n, labels in samples if n == name]


async def test_a_decided_tick_exports_what_it_decided_and_saw() -> None:
    w = make_world()
    own = OwnMetrics(lambda: {"PrometheusUnreachable": 3})
    result = await w.tick()
    own.tick(NS, NAME, result, 0.02)
    s = scrape(own)
    # The world: a replica StatefulSet of 2 pods, both with 0.1 s lag; 1000 read and 100 write q/s.
    assert of(s, "rwscaler_replicas_current") == 2
    assert of(s, "rwscaler_replicas_desired") == result.plan.desired_replicas
    assert of(s, "rwscaler_read_pool_size") == 2
    assert of(s, "rwscaler_replicas_max") == 5 and of(s, "rwscaler_read_pool_fallback") == 0
    for pod in ("db-replica-0", "db-replica-1"):
        assert of(s, "rwscaler_read_pool_member", pod=pod) == 1
        assert of(s, "rwscaler_replication_lag_seconds", pod=pod) == 0.1
    assert of(s, "rwscaler_replication_lag_max_seconds") == 0.1
    assert of(s, "rwscaler_qps", side="read") == 1000.0 and of(s, "rwscaler_qps", side="write") == 100.0
    assert of(s, "rwscaler_read_write_ratio") == 10.0
    assert of(s, "rwscaler_latency_p99_seconds", side="read") == 0.6 * READ_OBJECTIVE
    assert of(s, "rwscaler_latency_objective_seconds", side="read") == READ_OBJECTIVE
    assert of(s, "rwscaler_signal_known", signal="readQPS") == 1
    assert of(s, "rwscaler_workload_class", **{"class": result.plan.workload_class}) == 1
    assert of(s, "rwscaler_last_tick_timestamp_seconds") is not None
    assert s[("rwscaler_prometheus_query_errors_total", (("reason", "PrometheusUnreachable"),))] == 3
    assert s[("rwscaler_prometheus_query_errors_total", (("reason", "QueryTimeout"),))] == 0
    assert s[("rwscaler_reconcile_duration_seconds_count", (("outcome", "decided"),))] == 1
    # A steady workload: no rule took part, the decision held (docs/operator-metrics.md: "none").
    assert result.plan.reasons == ()
    assert of(s, "rwscaler_decisions_total", rule="none") == 1


async def test_unknown_signals_are_left_out_not_zero() -> None:
    w = make_world()
    w.metrics.read_qps = None
    w.metrics.default_lag = None
    own = OwnMetrics()
    own.tick(NS, NAME, await w.tick(), 0.01)
    s = scrape(own)
    assert of(s, "rwscaler_qps", side="read") is None
    assert of(s, "rwscaler_signal_known", signal="readQPS") == 0
    assert of(s, "rwscaler_qps", side="write") == 100.0
    assert of(s, "rwscaler_replication_lag_seconds", pod="db-replica-0") is None
    assert of(s, "rwscaler_replication_lag_max_seconds") is None
    assert of(s, "rwscaler_read_write_ratio") is None


async def test_scale_actions_and_pool_changes_are_counted_and_a_gone_workload_leaves() -> None:
    w = make_world()
    own = OwnMetrics()
    own.tick(NS, NAME, await w.tick(), 0.01)
    w.metrics.read_p99 = 2 * READ_OBJECTIVE  # a read breach: one replica more (test_reconcile)
    own.tick(NS, NAME, await w.tick(2), 0.01)
    w.metrics.lags = {"db-replica-1": 60.0}  # lags: it leaves the read pool
    own.tick(NS, NAME, await w.tick(2), 0.01)
    s = scrape(own)
    assert of(s, "rwscaler_read_pool_fallback") == 0
    assert of(s, "rwscaler_decisions_total", rule="LatencyStep") >= 1  # the breach's step up
    assert of(s, "rwscaler_scale_actions_total", direction="up") >= 1
    assert of(s, "rwscaler_scale_actions_total", direction="down") == 0
    assert of(s, "rwscaler_read_pool_member", pod="db-replica-1") == 0
    assert of(s, "rwscaler_read_pool_changes_total") >= 1
    w.metrics.default_lag = 60.0  # every replica lags: reads on the primary
    own.tick(NS, NAME, await w.tick(2), 0.01)
    assert of(scrape(own), "rwscaler_read_pool_fallback") == 1
    own.forget(NS, NAME)
    s = scrape(own)
    assert not [key for key in s if dict(key[1]).get("name") == NAME]


async def test_a_problem_is_exported_with_its_reason_and_an_undecided_tick_with_nothing_else() -> None:
    w = make_world()
    del w.cluster.statefulsets["db-replica"]  # reads fall back to the primary: still decided
    own = OwnMetrics()
    result = await w.tick()
    assert result.problem is not None and result.plan is not None
    own.tick(NS, NAME, result, 0.01)
    s = scrape(own)
    assert of(s, "rwscaler_workload_problem", reason="ScaleTargetNotFound") == 1
    assert of(s, "rwscaler_replicas_current") == 0
    w.cluster.workloads[(NS, NAME)]["spec"]["replicas"]["maxReplicas"] = "many"
    result = await w.tick(2)
    assert result.plan is None
    own.tick(NS, NAME, result, 0.01)
    s = scrape(own)
    assert of(s, "rwscaler_workload_problem", reason="SpecInvalid") == 1
    assert of(s, "rwscaler_replicas_desired") is None and of(s, "rwscaler_read_pool_size") is None
    assert s[("rwscaler_reconcile_duration_seconds_count", (("outcome", "problem"),))] == 1


def test_served_over_http_on_the_address_given() -> None:
    own = OwnMetrics()
    own.failed(0.5)
    port = free_port()
    stop = own.serve("127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            body: Any = answer.read().decode()
    finally:
        stop()
    assert 'rwscaler_reconcile_duration_seconds_count{outcome="failed"} 1.0' in body
