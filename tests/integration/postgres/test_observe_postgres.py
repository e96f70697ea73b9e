"""The `postgres` preset against the real thing (tests/support/pgenv.py): PostgreSQL 15 with two
streaming replicas, PgBouncer (`orders` writes, `orders_ro` reads), postgres_exporter with the
extension queries, the PgBouncer exporter, and Prometheus scraping them every second.

- pgbench drives reads and writes at known rates through PgBouncer; the observed read and write
  QPS are within 15% of what pgbench achieved, and the class from the observed ratio is the one
  pgbench's ratio gives.
- Pausing WAL replay on one replica shows its lag rising within two scrape intervals while the
  other stays near 0.
- An idle primary does not show growing lag (while the age of the last replayed commit grows).
- A broken stream does not read 0 lag.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from tests.support.pgenv import PgEnv

from rwscaler.core.classify import classify
from rwscaler.core.observation import Aggregation
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.metrics.prometheus import PrometheusMetricsSource
from rwscaler.metrics.source import MetricsReading, WorkloadQuery

pytestmark = pytest.mark.timeout(300)

# The rate window: the workload's interval is 5 s, so `${window}` = max(2 x 5 s, this).
WINDOW_S = 12.0


def orders_workload(env: PgEnv) -> WorkloadQuery:
    spec = ReadWriteWorkloadSpec.model_validate(
        {
            "primary": {"statefulSet": env.primary_statefulset},
            "replicas": {"statefulSet": env.replica_statefulset, "minReplicas": 1, "maxReplicas": 4},
            "prometheus": {"url": env.prometheus_url, "timeout": "5s"},
            "metrics": {"preset": "postgres", "staleness": "30s"},
            "pooler": {
                "kind": "PgBouncer",
                "pgbouncer": {
                    "deployment": "orders-pgbouncer",
                    "configMap": "orders-pgbouncer",
                    "database": env.database,
                    "readDatabase": env.read_database,
                    "adminSecret": {"name": "pgbouncer-admin", "key": "auth"},
                },
            },
            "behavior": {"intervalSeconds": 5},
        }
    )
    return WorkloadQuery(
        key=f"{env.namespace}/orders",
        namespace=env.namespace,
        name="orders",
        spec=spec,
        primary_pods=(env.primary_name,),
        replica_pods=tuple(r.name for r in env.replicas),
    )


@pytest.fixture
async def source() -> AsyncIterator[PrometheusMetricsSource]:
    # reuse_s=0: every observation here must be a new read (the tests compare consecutive ones).
    src = PrometheusMetricsSource(min_rate_window_s=WINDOW_S, reuse_s=0)
    yield src
    await src.close()


async def observe(source: PrometheusMetricsSource, q: WorkloadQuery) -> MetricsReading:
    return (await source.read([q], time.time()))[q.key]


@pytest.mark.parametrize(
    ("read_rate", "write_rate"),
    [
        pytest.param(600.0, 40.0, id="read-heavy"),
        pytest.param(30.0, 120.0, id="write-heavy"),
    ],
)
async def test_qps_within_15_percent_of_pgbench_and_same_class(
    pgenv: PgEnv, source: PrometheusMetricsSource, read_rate: float, write_rate: float
) -> None:
    q = orders_workload(pgenv)
    duration = WINDOW_S + 10
    reads = pgenv.start_pgbench(rate=read_rate, duration=duration, clients=2, read_only=True)
    writes = pgenv.start_pgbench(rate=write_rate, duration=duration, clients=2, read_only=False)
    # Observe when a whole rate window lies inside the steady part of both runs.
    await asyncio.sleep(WINDOW_S + 5)
    reading = await observe(source, q)
    read_result = await asyncio.to_thread(reads.wait)
    write_result = await asyncio.to_thread(writes.wait)

    observed_class = classify(reading.read_qps.value, reading.write_qps.value)
    pgbench_class = classify(read_result.tps, write_result.tps)
    print(
        f"\n| {read_result.tps:8.1f} | {reading.read_qps.value or float('nan'):8.1f} "
        f"| {write_result.tps:8.1f} | {reading.write_qps.value or float('nan'):8.1f} "
        f"| {pgbench_class} | {observed_class} |"
    )
    assert reading.read_qps.value == pytest.approx(read_result.tps, rel=0.15), reading.read_qps
    assert reading.write_qps.value == pytest.approx(write_result.tps, rel=0.15), reading.write_qps
    assert observed_class == pgbench_class
    # PgBouncer has no histogram: its latencies are averages, and say so.
    for latency in (reading.read_p99, reading.write_p99):
        assert latency.value is not None and 0 < latency.value < 1.0, latency
        assert latency.aggregation is Aggregation.AVERAGE


async def test_paused_replay_shows_lag_rising_on_that_replica_only(
    clean_pgenv: PgEnv, source: PrometheusMetricsSource
) -> None:
    env = clean_pgenv
    q = orders_workload(env)
    paused, other = (r.name for r in env.replicas)
    writes = env.start_pgbench(rate=50, duration=14, clients=1, read_only=False)
    try:
        await asyncio.sleep(3)
        before = await observe(source, q)
        assert before.replica_lag[paused].value is not None and before.replica_lag[paused].value < 1.0
        await asyncio.to_thread(env.pause_replay, paused)
        await asyncio.sleep(2 * env.scrape_interval + 0.3)  # two scrape intervals (+ ingestion)
        first = await observe(source, q)
        await asyncio.sleep(3)
        second = await observe(source, q)
    finally:
        await asyncio.to_thread(writes.wait, False)
    lag1, lag2 = first.replica_lag[paused].value, second.replica_lag[paused].value
    assert lag1 is not None and lag1 > 0.5, first.replica_lag[paused]
    assert lag2 is not None and lag2 > lag1 + 1.5, (lag1, second.replica_lag[paused])
    for reading in (first, second):
        other_lag = reading.replica_lag[other]
        assert other_lag.value is not None and other_lag.value < 1.0, other_lag


async def test_idle_primary_shows_no_growing_lag(pgenv: PgEnv, source: PrometheusMetricsSource) -> None:
    q = orders_workload(pgenv)
    # One commit to replay, so the replicas have a "last replayed commit" to age from; then idle.
    await asyncio.to_thread(pgenv.sql, None, "UPDATE pgbench_branches SET bbalance = bbalance WHERE bid = 1")
    await asyncio.to_thread(pgenv.wait_caught_up)
    start = await observe(source, q)
    await asyncio.sleep(6)
    end = await observe(source, q)
    # The naive "age of the last replayed commit" grows while nothing is written...
    assert pgenv.prometheus is not None
    replicas = "|".join(q.replica_pods)
    replay_ages = pgenv.prometheus.query(f'pg_replica_last_replay_age_seconds{{pod=~"{replicas}"}}')
    assert len(replay_ages) == len(q.replica_pods)
    assert min(s.value for s in replay_ages) > 5, replay_ages
    # ...but the preset's lag stays at 0 on every replica.
    for pod in q.replica_pods:
        assert start.replica_lag[pod].value is not None
        lag = end.replica_lag[pod]
        assert lag.value is not None and lag.value < 0.5, lag


async def test_broken_stream_does_not_read_zero_lag(
    clean_pgenv: PgEnv, source: PrometheusMetricsSource
) -> None:
    env = clean_pgenv
    q = orders_workload(env)
    broken, other = (r.name for r in env.replicas)
    await asyncio.to_thread(env.run_pgbench, rate=20, duration=2, read_only=False)
    await asyncio.to_thread(env.break_replication, broken)
    await asyncio.sleep(2 * env.scrape_interval + 0.3)
    first = await observe(source, q)
    await asyncio.sleep(2)
    second = await observe(source, q)
    lag1, lag2 = first.replica_lag[broken].value, second.replica_lag[broken].value
    # The classic formula (0 when everything received is replayed) would say 0 here.
    assert lag1 is not None and lag1 > 1.0, first.replica_lag[broken]
    assert lag2 is not None and lag2 > lag1, second.replica_lag[broken]
    other_lag = second.replica_lag[other]
    assert other_lag.value is not None and other_lag.value < 1.0, other_lag
