"""The `mysql` preset against the real thing (tests/support/mariadb.py): a MariaDB 10.11 primary
and one GTID replica, Debian's mysqld_exporter 0.14 on each, a pt-heartbeat style heartbeat
row, and Prometheus scraping them every second. The smaller sibling of test_observe_postgres.py.

- Reads (on the replica) and writes (on the primary) at fixed rates: the observed read and
  write QPS are within 15% of what the load achieved, and the class from the observed ratio is
  the one the load's ratio gives.
- Stopping the replica's SQL thread while writes continue shows its lag (from the heartbeat)
  rising within two scrape intervals; with the thread running the lag stays near 0.

Here (not in a folder of its own) so it shares the `postgres` marker; it skips, naming
`make pgenv-deps-mysql`, when MariaDB or mysqld_exporter is missing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from tests.support.mariadb import MariaDbEnv, mariadb_available
from tests.support.tiers import need

from rwscaler.core.classify import classify
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.metrics.prometheus import PrometheusMetricsSource
from rwscaler.metrics.source import MetricsReading, WorkloadQuery

pytestmark = pytest.mark.timeout(180)

# The rate window: the workload's interval is 3 s, so `${window}` = max(2 x 3 s, this).
WINDOW_S = 8.0


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDbEnv]:
    need(*mariadb_available())
    with MariaDbEnv() as env:
        yield env


def orders_workload(env: MariaDbEnv) -> WorkloadQuery:
    spec = ReadWriteWorkloadSpec.model_validate(
        {
            "primary": {"statefulSet": env.primary_statefulset},
            "replicas": {"statefulSet": env.replica_statefulset, "minReplicas": 1, "maxReplicas": 4},
            "prometheus": {"url": env.prometheus_url, "timeout": "5s"},
            "metrics": {"preset": "mysql", "staleness": "30s"},
            "behavior": {"intervalSeconds": 3},
        }
    )
    return WorkloadQuery(
        key=f"{env.namespace}/orders",
        namespace=env.namespace,
        name="orders",
        spec=spec,
        primary_pods=(env.primary_name,),
        replica_pods=(env.replica_name,),
    )


@pytest.fixture
async def source() -> AsyncIterator[PrometheusMetricsSource]:
    src = PrometheusMetricsSource(min_rate_window_s=WINDOW_S, reuse_s=0)
    yield src
    await src.close()


async def observe(source: PrometheusMetricsSource, q: WorkloadQuery) -> MetricsReading:
    return (await source.read([q], time.time()))[q.key]


def _fmt(value: float | None) -> str:
    return f"{value:8.1f}" if value is not None else "     n/a"


@pytest.mark.parametrize(
    ("read_rate", "write_rate"),
    [
        pytest.param(400.0, 20.0, id="read-heavy"),
        pytest.param(200.0, 500.0, id="write-heavy"),
    ],
)
async def test_qps_within_15_percent_of_the_load_and_same_class(
    mariadb: MariaDbEnv, source: PrometheusMetricsSource, read_rate: float, write_rate: float
) -> None:
    q = orders_workload(mariadb)
    load = mariadb.start_load(read_rate=read_rate, write_rate=write_rate, duration=WINDOW_S + 4)
    # Observe when a whole rate window lies inside the steady part of the load.
    await asyncio.sleep(WINDOW_S + 2)
    reading = await observe(source, q)
    result = await asyncio.to_thread(load.wait)

    # The heartbeat's UPDATEs are writes on the primary too: part of the load the servers see.
    # The exporters' own SELECTs (6 per scrape per server here, ~12/s at 1 s scrapes) are not
    # added: the rates are high enough that they stay a few percent.
    load_reads = result.reads.qps
    load_writes = result.writes.qps + mariadb.heartbeat_qps
    observed_class = classify(reading.read_qps.value, reading.write_qps.value)
    load_class = classify(load_reads, load_writes)
    print(
        f"\n| load reads {_fmt(load_reads)} | observed {_fmt(reading.read_qps.value)} "
        f"| load writes {_fmt(load_writes)} | observed {_fmt(reading.write_qps.value)} "
        f"| {load_class} | {observed_class} | read p99 {reading.read_p99.value} ({reading.read_p99.aggregation}) |"
    )
    assert reading.read_qps.value == pytest.approx(load_reads, rel=0.15), reading.read_qps
    assert reading.write_qps.value == pytest.approx(load_writes, rel=0.15), reading.write_qps
    assert observed_class == load_class
    # MariaDB's QUERY_RESPONSE_TIME plugin: the combined histogram gives a true read p99.
    assert reading.read_p99.value is not None and 0 < reading.read_p99.value < 1.0, reading.read_p99


async def test_stopped_sql_thread_shows_lag_rising(
    mariadb: MariaDbEnv, source: PrometheusMetricsSource
) -> None:
    q = orders_workload(mariadb)
    replica = mariadb.replica_name
    load = mariadb.start_load(read_rate=20, write_rate=50, duration=10)
    try:
        await asyncio.sleep(3)
        running = await observe(source, q)
        await asyncio.to_thread(mariadb.stop_replica_sql_thread)
        stopped_at = time.monotonic()
        await asyncio.sleep(2 * mariadb.scrape_interval + 0.3)  # two scrape intervals (+ ingestion)
        first = await observe(source, q)
        await asyncio.sleep(3)
        second = await observe(source, q)
        waited = time.monotonic() - stopped_at
    finally:
        await asyncio.to_thread(mariadb.start_replica_sql_thread, True)
        await asyncio.to_thread(load.wait)
    lag0 = running.replica_lag[replica].value
    lag1, lag2 = first.replica_lag[replica].value, second.replica_lag[replica].value
    print(f"\nlag: running {lag0}, stopped +2 scrapes {lag1}, +{waited:.1f}s {lag2}")
    assert lag0 is not None and lag0 < 1.0, running.replica_lag[replica]
    assert lag1 is not None and lag1 > 1.0, first.replica_lag[replica]
    assert lag2 is not None and lag2 > lag1 + 2.0, (lag1, second.replica_lag[replica])
    # Running again: back near 0 within a few scrapes.
    deadline = time.monotonic() + 10
    while True:
        after = (await observe(source, q)).replica_lag[replica]
        if after.value is not None and after.value < 1.0:
            break
        assert time.monotonic() < deadline, f"lag not back near 0 10 s after START SLAVE SQL_THREAD: {after}"
        await asyncio.sleep(0.5)
