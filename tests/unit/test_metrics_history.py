"""The history queries (metrics/history.py): what is rendered, how answers split, what is None."""

from __future__ import annotations

import logging
import math
import socket
import time
from typing import Any

import pytest

from rwscaler.core.forecast import horizons
from rwscaler.core.observation import UnknownReason
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.metrics.client import Endpoint, QueryFailure, RangeSeries, Series
from rwscaler.metrics.history import HistoryReader, Job, Planned, Side, Wanted, history_expansions, peak_expr
from rwscaler.metrics.presets import template_for
from rwscaler.metrics.prometheus import PrometheusMetricsSource
from rwscaler.metrics.promql import PART_LABEL
from rwscaler.metrics.signals import SignalName, SignalTemplate
from rwscaler.metrics.source import WorkloadQuery

URL = "http://prom:9090"
DAY, WEEK = 86400, 7 * 86400
NOW = 2_000_000_000.0


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def wq(name: str, ns: str = "shop", *, pooler: bool = True, url: str = URL, **trend: Any) -> WorkloadQuery:
    spec: dict[str, Any] = {
        "primary": {"statefulSet": f"{name}-pg"},
        "replicas": {"statefulSet": f"{name}-pg-replica", "maxReplicas": 4},
        "prometheus": {"url": url, "timeout": "2s"},
        "metrics": {"preset": "postgres"},
        "behavior": {"intervalSeconds": 15, "trend": trend},
    }
    if pooler:
        spec["pooler"] = {
            "kind": "PgBouncer",
            "pgbouncer": {
                "deployment": "pgb",
                "configMap": "pgb",
                "database": name,
                "adminSecret": {"name": "a", "key": "k"},
            },
        }
    return WorkloadQuery(
        f"{ns}/{name}",
        ns,
        name,
        ReadWriteWorkloadSpec.model_validate(spec),
        (f"{name}-pg-0",),
        (f"{name}-pg-replica-0",),
    )


def side(q: WorkloadQuery, signal: SignalName) -> Side:
    t = template_for(q.spec.metrics.preset, signal, q)
    assert isinstance(t, SignalTemplate)
    return Side(t.expr, t.by, t.owner)


def wanted(q: WorkloadQuery) -> Wanted:
    return Wanted(q, Endpoint(URL), 2.0, 60.0, side(q, SignalName.READ_QPS), side(q, SignalName.WRITE_QPS))


def plan(
    *qs: WorkloadQuery, reader: HistoryReader | None = None, now: float = NOW
) -> tuple[HistoryReader, Planned]:
    reader = reader or HistoryReader()
    return reader, reader.plan([wanted(q) for q in qs], now)


# ---- rendering ----------------------------------------------------------------------------------
def test_one_group_asks_three_history_queries_whatever_its_size() -> None:
    for n in (1, 7):
        jobs = plan(*(wq(f"db{i}") for i in range(n)))[1].jobs
        assert len(jobs) == 3
        assert sum(1 for j in jobs if j.span is not None) == 1


def test_season_query_offsets_windows_and_resolutions() -> None:
    q = wq("orders")
    up, down = horizons(q.spec, 15.0)
    jobs = plan(q, wq("carts", "bank"))[1].jobs
    seasons = next(j for j in jobs if j.span is None and "then:" in j.expr)
    expr = seasons.expr
    # The preset's own read expression, for the group (both namespaces and read databases).
    assert 'database=~"carts_ro|orders_ro"' in expr and 'namespace=~"bank|shop"' in expr
    assert "pgbouncer_stats_queries_total" in expr and "[60s]" in expr  # the signals' rate window
    h_up, h_down = math.ceil(up), math.ceil(down)
    for season in (DAY, WEEK):
        assert f"[300s:60s] offset {season}s)" in expr  # then: the 5-minute average at now - season
        assert f"[300s:60s])[{h_up}s:60s] offset {season - h_up}s)" in expr  # peak_up
        assert f"[300s:60s])[{h_down}s:60s] offset {season - h_down}s)" in expr  # peak_down
        for part in ("then", "up", "down"):
            assert f'"{PART_LABEL}", "{part}:{season}"' in expr
    assert expr.count("max_over_time(") == 4 and expr.count(" offset ") == 6


def test_a_long_horizon_is_sampled_coarser_and_a_horizon_longer_than_the_season_stops_now() -> None:
    # The spec keeps horizons shorter than the seasons; the query would still never look ahead.
    assert peak_expr("x", 7200, 90000) == "max_over_time(avg_over_time((x)[300s:60s])[7200s:60s])"
    assert peak_expr("x", 7200, 0) == "avg_over_time((x)[300s:60s] offset 7200s)"
    q2 = wq("orders", seasonsSeconds=[DAY], scaleDownLookaheadSeconds=43200)
    expr2 = next(j for j in plan(q2)[1].jobs if "then:" in j.expr).expr
    _up, down = horizons(q2.spec, 15.0)
    step = math.ceil(math.ceil(down) / 120 / 60) * 60
    assert step >= 420 and f"[{math.ceil(down)}s:{step}s] offset" in expr2  # 12 h / 120: >= 6 min


def test_ratio_queries_average_per_period_and_check_coverage() -> None:
    jobs = plan(wq("orders"))[1].jobs
    points = next(j for j in jobs if j.span is not None)
    start, end, step = points.span or (0, 0, 0)
    assert (end, step) == (NOW, float(WEEK)) and start == NOW - 11 * WEEK  # 12 weekly points
    # Hourly rates (the rate window is the step: the samples tile the week), averaged per week;
    # coverage counted every 6 h.
    assert "[3600s]" in points.expr and "[60s]" not in points.expr
    assert "avg_over_time((" in points.expr and f"[{WEEK}s:3600s])" in points.expr
    assert f"[{WEEK}s:21600s])" in points.expr
    assert 'database=~"orders_ro"' in points.expr and 'database=~"orders"' in points.expr
    recent = next(j for j in jobs if j.span is None and ":recent" in j.expr)
    assert f"[{3 * DAY}s:3600s])" in recent.expr and f"[{3 * DAY}s:3600s] offset {WEEK}s)" in recent.expr


def test_history_widens_pod_placeholders_to_the_statefulsets() -> None:
    direct = wq("orders", pooler=False)
    values = history_expansions([direct], "60s")
    assert values["replica_pods"] == "orders-pg-replica-[0-9]+"
    assert values["pods"] == "orders-pg-[0-9]+|orders-pg-replica-[0-9]+"
    jobs = plan(direct)[1].jobs
    assert 'pod=~"orders-pg-[0-9]+|orders-pg-replica-[0-9]+"' in jobs[0].expr
    # One set for both roles (CloudNativePG): roles move, the current pods are kept.
    same = WorkloadQuery(
        "shop/c",
        "shop",
        "c",
        ReadWriteWorkloadSpec.model_validate(
            {
                "replicas": {"statefulSet": "c", "maxReplicas": 3},
                "prometheus": {"url": URL},
                "metrics": {"preset": "cnpg"},
            }
        ),
        ("c-1",),
        ("c-2",),
    )
    values = history_expansions([same], "60s")
    assert (
        values["replica_pods"] == "c-2" and values["primary_pods"] == "c-1" and values["pods"] == "c-[0-9]+"
    )


# ---- splitting answers ----------------------------------------------------------------------------
def s(part: str, db: str, value: float, ns: str = "shop") -> Series:
    return Series({"namespace": ns, "database": db, PART_LABEL: part}, value, NOW)


def answers_for(jobs: list[Job], seasons: Any, points: Any, recent: Any) -> dict[Job, Any]:
    out: dict[Job, Any] = {}
    for j in jobs:
        if j.span is not None:
            out[j] = points
        elif "then:" in j.expr:
            out[j] = seasons
        else:
            out[j] = recent
    return out


def covered_point(db: str, side: str, k: int, value: float, count: float = 28) -> list[RangeSeries]:
    ts = NOW - (11 - k) * WEEK
    labels = {"namespace": "shop", "database": db}
    return [
        RangeSeries({**labels, PART_LABEL: side}, ((ts, value),)),
        RangeSeries({**labels, PART_LABEL: f"{side}_n"}, ((ts, count),)),
    ]


def recent_series(db: str, side: str, which: str, value: float, count: float = 28) -> list[Series]:
    return [s(f"{side}:{which}", db, value), s(f"{side}:{which}_n", db, count)]


def test_answers_split_per_workload_and_unknowns_are_none() -> None:
    orders, carts = wq("orders"), wq("carts")
    reader, planned = plan(orders, carts)
    jobs = planned.jobs
    seasons = [
        s(f"then:{DAY}", "orders_ro", 150.0),
        s(f"up:{DAY}", "orders_ro", 160.0),
        s(f"down:{DAY}", "orders_ro", 300.0),
        s(f"then:{WEEK}", "orders_ro", float("nan")),  # NaN: unknown
        s(f"down:{WEEK}", "orders_ro", 500.0),
        s(f"then:{DAY}", "carts_ro", 7.0),
        s(f"then:{DAY}", "orders_ro", 9999.0, ns="bank"),  # another namespace's database
    ]
    points = [
        *covered_point("orders_ro", "read", 10, 1000.0),
        *covered_point("orders", "write", 10, 10.0),
        *covered_point("orders_ro", "read", 11, 2000.0),
        *covered_point("orders", "write", 11, 0.0),  # zero writes: no ratio
        *covered_point("orders_ro", "read", 9, 500.0, count=5),  # not wholly recorded
        *covered_point("orders", "write", 9, 10.0),
        *covered_point("carts_ro", "read", 11, 30.0),
        *covered_point("carts", "write", 11, 60.0),
    ]
    recent = [
        *recent_series("orders_ro", "read", "recent", 300.0),
        *recent_series("orders", "write", "recent", 12.0),
        *recent_series("orders_ro", "read", "before", 200.0),
        # no writes before: unknown
    ]
    histories = reader.finish(planned, answers_for(jobs, seasons, points, recent), NOW)

    h = histories["shop/orders"]
    day, week = h.seasons
    assert (day.period_s, day.then, day.peak_up, day.peak_down) == (DAY, 150.0, 160.0, 300.0)
    assert (week.then, week.peak_up, week.peak_down) == (None, None, 500.0)
    assert h.ratios is not None
    assert h.ratios.points == (None,) * 9 + (None, 100.0, None)
    assert (h.ratios.recent, h.ratios.recent_before) == (25.0, None)

    c = histories["shop/carts"]
    assert c.seasons[0].then == 7.0 and c.seasons[0].peak_up is None
    assert c.ratios is not None and c.ratios.points[-1] == 0.5 and c.ratios.recent is None


def test_a_failed_history_query_is_none_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    reader = HistoryReader()
    failure = QueryFailure(UnknownReason.TIMEOUT, "no answer")
    caplog.set_level(logging.WARNING, logger="rwscaler.metrics.history")
    for tick in range(3):
        _r, planned = plan(wq("orders"), reader=reader, now=NOW + 15 * tick)
        h = reader.finish(planned, {j: failure for j in planned.jobs}, NOW + 15 * tick)["shop/orders"]
        assert all(x.then is None and x.peak_up is None and x.peak_down is None for x in h.seasons)
        assert h.ratios is not None and h.ratios.points == (None,) * 12 and h.ratios.recent is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3, [r.getMessage() for r in warnings]  # seasons, points, recent: once each


def test_ratio_answers_are_kept_for_15_minutes_and_failures_retried_sooner() -> None:
    reader = HistoryReader()
    _r, planned = plan(wq("orders"), reader=reader)
    reader.finish(planned, answers_for(planned.jobs, [], [], []), NOW)
    assert len(plan(wq("orders"), reader=reader, now=NOW + 899)[1].jobs) == 1
    reader2 = HistoryReader()
    _r, planned = plan(wq("orders"), reader=reader2)
    reader2.finish(planned, {j: QueryFailure(UnknownReason.UNREACHABLE, "x") for j in planned.jobs}, NOW)
    assert len(plan(wq("orders"), reader=reader2, now=NOW + 60)[1].jobs) == 1
    assert len(plan(wq("orders"), reader=reader2, now=NOW + 121)[1].jobs) == 3


def test_a_group_whose_members_change_keeps_one_ratio_answer_not_one_per_membership() -> None:
    # Workloads coming and going (the soak: one created and one deleted every 3 s) change the
    # group's queries each time; answers for memberships that are gone must not pile up.
    reader = HistoryReader()
    for i in range(50):
        members = (wq("orders"), wq(f"churn{i}"))
        _r, planned = plan(*members, reader=reader, now=NOW + i)
        assert len(planned.jobs) == 3  # new members: their ratios are asked
        assert all(f"churn{i}_ro" in job.expr for job in planned.jobs)  # rendered for them
        reader.finish(planned, answers_for(planned.jobs, [], [], []), NOW + i)
    assert len(reader._kept) == 1 and len(reader._texts) == 1
    # The same members again within the refresh and the seasons' minute: nothing is asked.
    assert len(plan(wq("orders"), wq("churn49"), reader=reader, now=NOW + 60)[1].jobs) == 0


def test_a_seasons_answer_serves_the_reads_of_the_next_minute_and_a_failure_none() -> None:
    # docs/history.md: the seasons are asked at most once a minute per group.
    reader = HistoryReader()
    answer = [s(f"then:{DAY}", "orders_ro", 150.0), s("now", "orders_ro", 120.0)]
    failure = QueryFailure(UnknownReason.TIMEOUT, "no answer")

    def seasons_job(now: float) -> tuple[Planned, list[Job]]:
        planned = plan(wq("orders"), reader=reader, now=now)[1]
        return planned, [j for j in planned.jobs if "then:" in j.expr]

    planned, asked = seasons_job(NOW)
    assert len(asked) == 1
    reader.finish(planned, answers_for(planned.jobs, answer, [], []), NOW)
    for later in (1.0, 30.0, 59.0):
        planned, asked = seasons_job(NOW + later)
        assert asked == []
        h = reader.finish(planned, answers_for(planned.jobs, [], [], []), NOW + later)["shop/orders"]
        assert (h.seasons[0].then, h.now_qps) == (150.0, 120.0)
    planned, asked = seasons_job(NOW + 61)
    assert len(asked) == 1
    h = reader.finish(planned, {j: failure for j in planned.jobs}, NOW + 61)["shop/orders"]
    assert (h.seasons[0].then, h.now_qps) == (None, None)  # not the answer of a minute ago
    assert len(seasons_job(NOW + 62)[1]) == 1  # a failure is asked again on the next read


# ---- through the source ----------------------------------------------------------------------------
async def test_history_is_not_asked_of_a_prometheus_that_did_not_answer_the_signals() -> None:
    url = dead_url()
    source = PrometheusMetricsSource(reuse_s=0)
    qs = [wq(f"db{i}", url=url) for i in range(5)]
    try:
        readings = await source.read(qs, time.time())
    finally:
        await source.close()
    stats = source.last_stats
    # The five signals, the role metric and the two key-metric bundles (these workloads have a
    # PgBouncer pooler: docs/metrics.md) were asked; no history query after them.
    assert stats is not None and (stats.queries, stats.history_queries, stats.total_queries) == (8, 0, 8)
    # Each failed query counted by its reason (the operator's rwscaler_prometheus_query_errors_total).
    assert source.query_errors["PrometheusUnreachable"] == 8 and source.query_errors["QueryTimeout"] == 0
    for reading in readings.values():
        assert reading.read_qps.reason is UnknownReason.UNREACHABLE  # the signals came back
        assert [x.period_s for x in reading.history.seasons] == [DAY, WEEK]
        assert all(x.then is None for x in reading.history.seasons)
        assert reading.history.ratios is not None and reading.history.ratios.points == (None,) * 12
