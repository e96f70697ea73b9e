"""Missing data is unknown, never 0: every UnknownReason produced by a real Prometheus.

Each test breaks one thing (the server, the query, the series, their values, their age) and
checks the reading says which signal is unknown and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prom_helpers import (
    NAMESPACE,
    REPLICAS,
    PromEnv,
    custom_metrics,
    require_prometheus,
    serve_healthy,
    workload,
)
from tests.support.exporter import ControlledExporter
from tests.support.ports import free_port
from tests.support.prometheus import PrometheusServer

from rwscaler.core.observation import Signal, UnknownReason
from rwscaler.metrics.prometheus import PrometheusMetricsSource
from rwscaler.metrics.source import MetricsReading, WorkloadQuery

pytestmark = pytest.mark.timeout(120)


async def read_one(q: WorkloadQuery, source: PrometheusMetricsSource | None = None) -> MetricsReading:
    src = source or PrometheusMetricsSource(min_rate_window_s=4)
    try:
        return (await src.read([q], time.time()))[q.key]
    finally:
        if source is None:
            await src.close()


def scalars(reading: MetricsReading) -> dict[str, Signal]:
    return {
        "readQPS": reading.read_qps,
        "writeQPS": reading.write_qps,
        "readLatencyP99": reading.read_p99,
        "writeLatencyP99": reading.write_p99,
    }


async def test_prometheus_down_is_unreachable(prom_env: PromEnv) -> None:
    with PrometheusServer([prom_env.exporter.target("app")]) as prom:
        url = prom.url
        prom.stop()
        reading = await read_one(workload(url, custom_metrics()))
    for name, sig in scalars(reading).items():
        assert sig.reason is UnknownReason.UNREACHABLE, (name, sig)
        assert name in sig.message
    assert {s.reason for s in reading.replica_lag.values()} == {UnknownReason.UNREACHABLE}


async def test_wrong_path_is_http_error(env: PromEnv) -> None:
    serve_healthy(env)
    reading = await read_one(workload(env.prom.url + "/not-prometheus", custom_metrics()))
    assert reading.read_qps.reason is UnknownReason.HTTP_ERROR
    assert "404" in reading.read_qps.message


async def test_bad_promql_and_range_results_are_query_errors(env: PromEnv) -> None:
    """Admission and the models refuse PromQL that does not parse; one stored before that rule (built
    here without validation) is still a QueryError, as is a query that parses but gives a range."""
    serve_healthy(env)
    q = workload(env.prom.url, custom_metrics(writeQPS='app_queries_total{side="write"}[1m]'))
    metrics = q.spec.metrics
    assert metrics.queries is not None
    broken = metrics.queries.model_copy(update={"readQPS": "sum(rate(app_queries_total["})
    q = dataclasses.replace(
        q, spec=q.spec.model_copy(update={"metrics": metrics.model_copy(update={"queries": broken})})
    )
    reading = await read_one(q)
    assert reading.read_qps.reason is UnknownReason.QUERY_ERROR and "readQPS" in reading.read_qps.message
    assert reading.write_qps.reason is UnknownReason.QUERY_ERROR and "matrix" in reading.write_qps.message
    # The other signals of the same workload are unaffected.
    assert reading.read_p99.value == pytest.approx(0.012)


async def test_no_series_is_empty(env: PromEnv) -> None:
    serve_healthy(env)
    env.exporter.remove("app_latency_p99_seconds")
    env.settle()
    reading = await read_one(workload(env.prom.url, custom_metrics()))
    for sig in (reading.read_p99, reading.write_p99):
        assert sig.value is None and sig.reason is UnknownReason.EMPTY
    assert "readLatencyP99" in reading.read_p99.message


@pytest.mark.parametrize("bad", [math.nan, math.inf])
async def test_nan_and_inf_are_not_a_number(env: PromEnv, bad: float) -> None:
    serve_healthy(env)
    env.exporter.set("app_latency_p99_seconds", {"namespace": NAMESPACE, "side": "read"}, bad)
    env.exporter.set("app_lag_seconds", {"namespace": NAMESPACE, "pod": REPLICAS[0]}, bad)
    env.settle()
    reading = await read_one(workload(env.prom.url, custom_metrics()))
    assert reading.read_p99.value is None and reading.read_p99.reason is UnknownReason.NOT_A_NUMBER
    assert reading.write_p99.value == pytest.approx(0.004)
    lag = reading.replica_lag[REPLICAS[0]]
    assert lag.value is None and lag.reason is UnknownReason.NOT_A_NUMBER and "replicationLag" in lag.message
    assert reading.replica_lag[REPLICAS[1]].value == pytest.approx(3.5)


async def test_several_series_where_one_was_expected(env: PromEnv) -> None:
    serve_healthy(env)
    env.exporter.set("app_lag_seconds", {"namespace": NAMESPACE, "pod": REPLICAS[1], "slot": "b"}, 4.0)
    env.settle()
    # No aggregation over the two sides: two series for a scalar signal.
    q = workload(
        env.prom.url, custom_metrics(readLatencyP99='app_latency_p99_seconds{namespace=~"${namespace}"}')
    )
    reading = await read_one(q)
    assert reading.read_p99.reason is UnknownReason.MULTIPLE_SERIES and "2 series" in reading.read_p99.message
    # Two lag series for one replica: only that replica's lag is unknown.
    assert reading.replica_lag[REPLICAS[1]].reason is UnknownReason.MULTIPLE_SERIES
    assert reading.replica_lag[REPLICAS[0]].value == pytest.approx(0.25)


async def test_evaluation_timeout_is_timeout(env: PromEnv) -> None:
    serve_healthy(env)
    # A subquery of millions of steps: far longer than the 100ms the workload allows.
    slow = "count_over_time(vector(1)[2h:1ms])"
    q = workload(env.prom.url, custom_metrics(readQPS=slow), prometheus={"timeout": "100ms"})
    started = time.monotonic()
    reading = await read_one(q)
    assert time.monotonic() - started < 5
    assert reading.read_qps.reason is UnknownReason.TIMEOUT, reading.read_qps
    assert "readQPS" in reading.read_qps.message


@contextlib.contextmanager
def hung_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a Prometheus stuck solid."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", free_port()))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = listener.accept()
                held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        listener.close()


async def test_a_hung_prometheus_times_out_and_delays_nobody_else(env: PromEnv) -> None:
    serve_healthy(env)
    env.settle()
    # Under load a scrape can outlast its timeout, and Prometheus then marks the target's series
    # stale until the next one: wait until it answers the healthy workload's read p99 itself
    # (twice failed in CI with "no series" for it, the exporter having been scraped).
    deadline = time.monotonic() + 30
    while not env.prom.query(f'app_latency_p99_seconds{{namespace="{NAMESPACE}", side="read"}}'):
        assert time.monotonic() < deadline, "Prometheus never answered the healthy series"
        env.settle(1)
    with hung_server() as hung_url:
        stuck = workload(hung_url, custom_metrics(), name="stuck", prometheus={"timeout": "1s"})
        healthy = workload(env.prom.url, custom_metrics(), name="healthy")
        source = PrometheusMetricsSource(max_concurrency=2, min_rate_window_s=4)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick_task = asyncio.create_task(ticker())
        started = time.monotonic()
        try:
            readings = await source.read([stuck, healthy], time.time())
        finally:
            elapsed = time.monotonic() - started
            tick_task.cancel()
            await source.close()
    # Five queries to the hung server, two at a time, 1s each: bounded by the timeout per query.
    assert elapsed < 3 * 1.0 + 1.0
    assert all(s.reason is UnknownReason.TIMEOUT for s in scalars(readings[stuck.key]).values())
    assert readings[healthy.key].read_p99.value == pytest.approx(0.012), readings[healthy.key].read_p99
    # The event loop kept running the whole time (about 100 ticks a second).
    assert ticks > 40 * elapsed


async def test_samples_older_than_staleness_are_stale() -> None:
    """Prometheus scraping every 20s while the workload accepts samples 2s old at most."""
    require_prometheus()  # this test starts a Prometheus of its own, without the module's fixture
    with ControlledExporter() as exporter:
        exporter.set("app_lag_seconds", {"namespace": NAMESPACE, "pod": REPLICAS[0]}, 0.5)
        exporter.set("app_lag_seconds", {"namespace": NAMESPACE, "pod": REPLICAS[1]}, 0.5)
        exporter.set("pg_replica_replay_lag_seconds", {"namespace": NAMESPACE, "pod": REPLICAS[0]}, 0.0)
        exporter.set("pg_wal_receiver_streaming", {"namespace": NAMESPACE, "pod": REPLICAS[0]}, 1)
        with PrometheusServer([exporter.target("app")], scrape_interval=20) as prom:
            prom.wait_for_targets()
            # The preset confirms a replica's lag by its previous sample (docs/metrics.md): wait
            # for the second scrape, so that a stale lag is stale, not merely unconfirmed.
            prom.wait_for(
                "count_over_time(pg_wal_receiver_streaming[1m])", lambda s: bool(s) and s[0].value >= 2, 45
            )
            await asyncio.sleep(3)  # the samples are now ~3s old, the next scrape is ~17s away
            custom = workload(prom.url, {**custom_metrics(), "staleness": "2s"})
            preset = workload(prom.url, {"preset": "postgres", "staleness": "2s"}, name="preset")
            fresh_enough = workload(prom.url, {**custom_metrics(), "staleness": "1m"}, name="lenient")
            source = PrometheusMetricsSource()
            try:
                readings = await source.read([custom, preset, fresh_enough], time.time())
            finally:
                await source.close()
    lag = readings[custom.key].replica_lag[REPLICAS[0]]
    assert lag.value is None and lag.reason is UnknownReason.STALE, lag
    assert "replicationLag" in lag.message and "staleness bound 2s" in lag.message
    preset_lag = readings[preset.key].replica_lag[REPLICAS[0]]
    assert preset_lag.reason is UnknownReason.STALE, preset_lag
    # The replica the exporter does not serve at all is missing, not stale.
    assert readings[preset.key].replica_lag[REPLICAS[1]].reason is UnknownReason.EMPTY
    assert readings[fresh_enough.key].replica_lag[REPLICAS[0]].value == pytest.approx(0.5)


async def test_an_exporter_failing_its_scrapes_makes_series_go_missing(env: PromEnv) -> None:
    serve_healthy(env)
    env.settle()
    before = await read_one(workload(env.prom.url, custom_metrics()))
    assert before.replica_lag[REPLICAS[0]].value == pytest.approx(0.25)
    env.exporter.fail_with(503)
    env.settle()
    await asyncio.sleep(0.5)
    after = await read_one(workload(env.prom.url, custom_metrics()))
    # Prometheus marks the target's series stale at the failed scrape: no data, unknown.
    assert after.replica_lag[REPLICAS[0]].reason is UnknownReason.EMPTY
    assert after.read_p99.reason is UnknownReason.EMPTY
