"""The history (Observation.history) read from a real Prometheus holding two weeks of known data.

Fifteen days of the postgres preset's PgBouncer counters (`pgbouncer_stats_queries_total` of
`shop/orders_ro`, the reads, and `shop/orders`, the writes), one sample every 15 s, with
timestamps relative to the test's start, are backfilled with `promtool tsdb create-blocks-from
openmetrics`; Prometheus starts on that data with a long retention. The read rate is a known
step function, so every value of the History is known:

- a day ago: 150 q/s from 10 min before to 10 min after (then, peak_up = 150), then the 200 q/s
  base with a 300 q/s bump from +30 to +40 min (peak_down over the 1 h lookahead = 300);
- a week ago: 80 q/s around it (then, peak_up = 80), a 500 q/s bump from +20 to +35 min;
- base read rate 100 q/s until 8 days ago, 200 q/s since; writes 10 q/s throughout.

The data runs on 10 minutes past the test's start (Prometheus ignores samples after a query's
time): had it ended at the start, the last minute steps of the "now" average would see a window
cut short by the data's end and a rate Prometheus extrapolates, by an amount that depends on where
the query falls between minute steps (a CI run read 193.7 for 200).

Values are compared within 2 % (rates from 15 s counters at minute resolution are exact up to
Prometheus's extrapolation at the edges of a window; the ratio averages within 1 %). A second
workload of the same group (`shop/carts`) has no series at all: None everywhere.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator

import pytest
from prom_helpers import backfilled_prometheus, openmetrics, pgbouncer, require_prometheus, workload
from tests.support.prometheus import PrometheusServer

from rwscaler.core.forecast import horizons
from rwscaler.metrics.prometheus import PrometheusMetricsSource

pytestmark = pytest.mark.timeout(300)

DAY, WEEK, MIN = 86400.0, 7 * 86400.0, 60.0
SPACING = 15.0
DAYS = 15
AHEAD = 10 * MIN  # the data's last sample is this long after the test's start
WRITE_QPS = 10.0
# (start, end, read q/s) relative to the test's start; later entries win.
OVERRIDES = [
    (-DAY - 10 * MIN, -DAY + 10 * MIN, 150.0),
    (-DAY + 30 * MIN, -DAY + 40 * MIN, 300.0),
    (-WEEK - 10 * MIN, -WEEK + 10 * MIN, 80.0),
    (-WEEK + 20 * MIN, -WEEK + 35 * MIN, 500.0),
]


def read_rate(rel: float) -> float:
    rate = 100.0 if rel < -8 * DAY else 200.0
    for start, end, value in OVERRIDES:
        if start <= rel < end:
            rate = value
    return rate


def mean_read_rate(start: float, end: float) -> float:
    """The exact average read rate over [start, end] (relative seconds), from the step function."""
    edges = sorted({start, end, -8 * DAY, *(e for o in OVERRIDES for e in o[:2])})
    edges = [e for e in edges if start <= e <= end]
    area = sum(read_rate((a + b) / 2) * (b - a) for a, b in itertools.pairwise(edges))
    return area / (end - start)


def history_text(t0: float) -> str:
    reads: list[tuple[float, float]] = []
    writes: list[tuple[float, float]] = []
    read_total = write_total = 0.0
    steps = int((DAYS * DAY + AHEAD) / SPACING)
    for i in range(steps + 1):
        rel = -DAYS * DAY + i * SPACING
        reads.append((t0 + rel, read_total))
        writes.append((t0 + rel, write_total))
        read_total += read_rate(rel) * SPACING
        write_total += WRITE_QPS * SPACING
    ns = ("namespace", "shop")
    return openmetrics(
        {
            ("pgbouncer_stats_queries_total", (("database", "orders_ro"), ns)): reads,
            ("pgbouncer_stats_queries_total", (("database", "orders"), ns)): writes,
        }
    )


@pytest.fixture(scope="module")
def history_prom() -> Iterator[tuple[PrometheusServer, float]]:
    require_prometheus()
    t0 = math.floor(time.time())
    with backfilled_prometheus(history_text(t0)) as prom:
        # Ready is not enough: wait until the backfilled blocks answer queries.
        prom.wait_for(
            'count_over_time(pgbouncer_stats_queries_total{database="orders"}[1h] offset 14d)', timeout=120
        )
        yield prom, float(t0)


def close(value: float | None, expected: float, rel: float = 0.02) -> bool:
    return value is not None and math.isclose(value, expected, rel_tol=rel)


async def test_history_matches_what_was_written(history_prom: tuple[PrometheusServer, float]) -> None:
    prom, t0 = history_prom
    orders = workload(prom.url, {"preset": "postgres"}, pooler=pgbouncer("orders"), interval_s=15)
    carts = workload(prom.url, {"preset": "postgres"}, name="carts", pooler=pgbouncer("carts"), interval_s=15)
    source = PrometheusMetricsSource(reuse_s=0)
    try:
        readings = await source.read([orders, carts], time.time())
        first = source.last_stats
        await source.read([orders, carts], time.time())
        second = source.last_stats
    finally:
        await source.close()
    now = time.time()
    assert now - t0 < AHEAD, "the test's windows assume every window that ends now lies inside the data"

    # One seasons query and the two ratio queries for the whole group; all three are kept (the
    # seasons a minute, the ratios 15 minutes: docs/history.md), so the next read asks none.
    # The five signals, the role metric and the key metrics' two bundles (PgBouncer pools too).
    assert first is not None and first.history_queries == 3 and first.queries == 8
    assert second is not None and second.history_queries == 0 and second.queries == 8

    h = readings["shop/orders"].history
    assert (h.horizon_up_s, h.horizon_down_s) == horizons(orders.spec, 15.0)
    # The windows below hold for any horizon that keeps a week's 80 q/s (10 min) and both bumps.
    assert h.horizon_up_s < 10 * MIN and 40 * MIN < h.horizon_down_s < 2 * 3600
    day, week = h.seasons
    assert day.period_s == DAY and week.period_s == WEEK
    # The same 5-minute average now: the base rate, 200 q/s.
    assert close(h.now_qps, 200.0), h.now_qps
    assert close(day.then, 150.0), day
    assert close(day.peak_up, 150.0), day
    assert close(day.peak_down, 300.0), day
    assert close(week.then, 80.0), week
    assert close(week.peak_up, 80.0), week
    assert close(week.peak_down, 500.0), week

    ratios = h.ratios
    assert ratios is not None and ratios.period_s == WEEK and len(ratios.points) == 12
    # Only the last two weeks are wholly recorded (the data begins 15 days ago).
    assert ratios.points[:10] == (None,) * 10, ratios.points
    rel_now = now - t0
    older = mean_read_rate(rel_now - 2 * WEEK, rel_now - WEEK) / WRITE_QPS
    newer = mean_read_rate(rel_now - WEEK, rel_now) / WRITE_QPS
    assert close(ratios.points[10], older, 0.01), (ratios.points, older)
    assert close(ratios.points[11], newer, 0.01), (ratios.points, newer)
    assert ratios.shift_s == 3 * DAY
    assert close(ratios.recent, mean_read_rate(rel_now - 3 * DAY, rel_now) / WRITE_QPS, 0.01), ratios
    before = mean_read_rate(rel_now - WEEK - 3 * DAY, rel_now - WEEK) / WRITE_QPS
    assert close(ratios.recent_before, before, 0.01), (ratios, before)

    empty = readings["shop/carts"].history
    assert all(s.then is None and s.peak_up is None and s.peak_down is None for s in empty.seasons)
    assert empty.now_qps is None
    assert empty.ratios is not None and empty.ratios.points == (None,) * 12
    assert empty.ratios.recent is None and empty.ratios.recent_before is None
