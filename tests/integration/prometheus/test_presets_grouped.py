"""Presets asked once per signal for a whole group of workloads, split back per workload.

The ControlledExporter serves the postgres preset's metric names (PgBouncer exporter stats per
database, the extension queries' lag gauges per pod) for three workloads in two namespaces,
plus decoys that a sloppy split would pick up; Prometheus scrapes it; one `read()` must ask
five queries in all and give each workload its own numbers.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from prom_helpers import PromEnv, SteadyCounters, pgbouncer, workload

from rwscaler.core.observation import Aggregation, UnknownReason
from rwscaler.metrics.presets import all_templates
from rwscaler.metrics.prometheus import PrometheusMetricsSource
from rwscaler.metrics.promql import render, with_freshness
from rwscaler.metrics.source import WorkloadQuery

pytestmark = pytest.mark.timeout(120)


# namespace, workload, read q/s, write q/s, read ms/query, write ms/query, lag of replica 0 and 1
WORKLOADS = [
    ("shop", "orders", 120.0, 12.0, 2.0, 5.0, (0.0, 7.5)),
    ("shop", "carts", 30.0, 60.0, 1.0, 3.0, (0.25, 0.5)),
    ("bank", "ledger", 50.0, 5.0, 4.0, 8.0, (1.5, None)),  # replica 1 exports no lag
]


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


async def test_one_query_per_signal_for_all_workloads_split_correctly(env: PromEnv) -> None:
    rates: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for ns, name, read_qps, write_qps, read_ms, write_ms, lags in WORKLOADS:
        for db, qps, ms in ((f"{name}_ro", read_qps, read_ms), (name, write_qps, write_ms)):
            rates[key("pgbouncer_stats_queries_total", namespace=ns, database=db)] = qps
            # Query time is the whole latency, the pool wait (20% of it) included: not added again.
            rates[key("pgbouncer_stats_queries_duration_microseconds_total", namespace=ns, database=db)] = (
                qps * ms * 1000
            )
            rates[key("pgbouncer_stats_waiting_duration_microseconds_total", namespace=ns, database=db)] = (
                qps * ms * 1000 * 0.2
            )
        for ordinal, lag in enumerate(lags):
            pod = f"{name}-pg-replica-{ordinal}"
            if lag is not None:
                env.exporter.set("pg_replica_replay_lag_seconds", {"namespace": ns, "pod": pod}, lag)
                env.exporter.set("pg_wal_receiver_streaming", {"namespace": ns, "pod": pod}, 1)
    # Decoys: a database named like shop's in another namespace, and a replica of shop/orders
    # that the operator does not list (scaled in) with a huge lag.
    rates[key("pgbouncer_stats_queries_total", namespace="bank", database="orders_ro")] = 5000.0
    env.exporter.set("pg_replica_replay_lag_seconds", {"namespace": "shop", "pod": "orders-pg-replica-9"}, 99)
    env.exporter.set("pg_wal_receiver_streaming", {"namespace": "shop", "pod": "orders-pg-replica-9"}, 1)

    queries = [
        workload(
            env.prom.url,
            {"preset": "postgres"},
            namespace=ns,
            name=name,
            primary_set=f"{name}-pg",
            replica_set=f"{name}-pg-replica",
            replica_pods=(f"{name}-pg-replica-0", f"{name}-pg-replica-1"),
            pooler=pgbouncer(name),
            interval_s=2,
        )
        for ns, name, *_ in WORKLOADS
    ]
    source = PrometheusMetricsSource(min_rate_window_s=4)
    with SteadyCounters(env.exporter, rates):
        await asyncio.sleep(5.5)  # a full rate window of steady counters
        try:
            readings = await source.read(queries, time.time())
        finally:
            await source.close()

    # The five signals, the role metric and the key metrics' two bundles (with PgBouncer pools).
    assert source.last_stats is not None and source.last_stats.queries == 8
    for (_ns, name, read_qps, write_qps, read_ms, write_ms, lags), q in zip(WORKLOADS, queries, strict=True):
        r = readings[q.key]
        assert r.read_qps.value == pytest.approx(read_qps, rel=0.1), (name, r.read_qps)
        assert r.write_qps.value == pytest.approx(write_qps, rel=0.1), (name, r.write_qps)
        assert r.read_p99.value == pytest.approx(read_ms / 1000, rel=0.1), (name, r.read_p99)
        assert r.write_p99.value == pytest.approx(write_ms / 1000, rel=0.1), (name, r.write_p99)
        assert r.read_p99.aggregation is Aggregation.AVERAGE
        assert set(r.replica_lag) == set(q.replica_pods)
        for pod, lag in zip(q.replica_pods, lags, strict=True):
            sig = r.replica_lag[pod]
            if lag is None:
                # Missing for this replica only: unknown for it, the other one is still known.
                assert sig.value is None and sig.reason is UnknownReason.EMPTY, (pod, sig)
                assert pod in sig.message
            else:
                assert sig.value == pytest.approx(lag), (pod, sig)


async def test_broken_stream_reads_the_age_of_the_last_replayed_commit(env: PromEnv) -> None:
    pod0, pod1 = "orders-pg-replica-0", "orders-pg-replica-1"
    for pod, streaming in ((pod0, 0), (pod1, 1)):
        labels = {"namespace": "shop", "pod": pod}
        env.exporter.set("pg_wal_receiver_streaming", labels, streaming)
        # The classic formula reads 0 on both: nothing received is left unreplayed.
        env.exporter.set("pg_replica_replay_lag_seconds", labels, 0)
        env.exporter.set("pg_replica_last_replay_age_seconds", labels, 42.0)
    env.settle()
    q = workload(env.prom.url, {"preset": "postgres"}, pooler=pgbouncer("orders"))
    source = PrometheusMetricsSource()
    try:
        r = (await source.read([q], time.time()))[q.key]
    finally:
        await source.close()
    assert r.replica_lag[pod0].value == pytest.approx(42.0)
    assert r.replica_lag[pod1].value == 0.0


@pytest.mark.parametrize(
    ("preset", "index"),
    [(preset, i) for preset, templates in all_templates().items() for i in range(len(templates))],
)
def test_every_preset_template_is_valid_promql(prom_env: PromEnv, preset: str, index: int) -> None:
    template = all_templates()[preset][index]
    q = workload(prom_env.prom.url, {"preset": "postgres"}, pooler=pgbouncer("orders"))
    expr = render(template.expr, [q], "60s")
    if template.fresh is not None:
        expr = with_freshness(expr, render(template.fresh, [q], "60s"))
    prom_env.prom.query(expr)  # raises PrometheusError on a parse or execution error


async def test_a_counter_that_stopped_being_exported_is_stale_not_its_old_rate(env: PromEnv) -> None:
    rates = {
        key("pgbouncer_stats_queries_total", namespace="shop", database="orders_ro"): 50.0,
        key("pgbouncer_stats_queries_total", namespace="shop", database="orders"): 5.0,
    }
    q = workload(env.prom.url, {"preset": "postgres"}, pooler=pgbouncer("orders"), interval_s=2)
    source = PrometheusMetricsSource(min_rate_window_s=30, reuse_s=0)
    try:
        with SteadyCounters(env.exporter, rates):
            await asyncio.sleep(4)
            live = (await source.read([q], time.time()))[q.key]
        env.exporter.remove("pgbouncer_stats_queries_total", {"namespace": "shop", "database": "orders_ro"})
        env.settle()
        gone = (await source.read([q], time.time()))[q.key]
    finally:
        await source.close()
    assert live.read_qps.value is not None and live.read_qps.value > 0
    # rate() over the 30s window still has the samples from before the series vanished;
    # the reading must not pass that old rate off as current.
    assert gone.read_qps.value is None and gone.read_qps.reason is UnknownReason.STALE, gone.read_qps
    assert "readQPS" in gone.read_qps.message


async def test_a_group_read_again_follows_its_members_pods(env: PromEnv) -> None:
    """Read after read, the same members are asked the same queries; a member whose pods changed
    is asked about its new pods (docs/operator.md: a grouped read keeps its rendered queries only
    while the members' specs and pods stay the same)."""
    for ordinal, lag in ((0, 0.5), (1, 1.5), (2, 7.0)):
        labels = {"namespace": "shop", "pod": f"orders-pg-replica-{ordinal}"}
        env.exporter.set("pg_replica_replay_lag_seconds", labels, lag)
        env.exporter.set("pg_wal_receiver_streaming", labels, 1)
    env.settle()

    def orders(*replicas: int) -> WorkloadQuery:
        pods = tuple(f"orders-pg-replica-{i}" for i in replicas)
        return workload(env.prom.url, {"preset": "postgres"}, pooler=pgbouncer("orders"), replica_pods=pods)

    def carts() -> WorkloadQuery:
        return workload(
            env.prom.url,
            {"preset": "postgres"},
            name="carts",
            primary_set="carts-pg",
            replica_set="carts-pg-replica",
            replica_pods=("carts-pg-replica-0",),
            pooler=pgbouncer("carts"),
        )

    source = PrometheusMetricsSource(reuse_s=0)
    try:
        first = (await source.read([orders(0, 1), carts()], time.time()))["shop/orders"]
        # Built anew as the operator does on each tick: equal, not the same objects.
        again = (await source.read([carts(), orders(0, 1)], time.time()))["shop/orders"]
        scaled = (await source.read([orders(0, 1, 2), carts()], time.time()))["shop/orders"]
        back = (await source.read([orders(0, 1), carts()], time.time()))["shop/orders"]
    finally:
        await source.close()
    for reading in (first, again, back):
        assert {pod: s.value for pod, s in reading.replica_lag.items()} == {
            "orders-pg-replica-0": 0.5,
            "orders-pg-replica-1": 1.5,
        }
    assert {pod: s.value for pod, s in scaled.replica_lag.items()} == {
        "orders-pg-replica-0": 0.5,
        "orders-pg-replica-1": 1.5,
        "orders-pg-replica-2": 7.0,
    }
