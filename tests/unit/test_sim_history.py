"""The simulator's Prometheus history (sim/history.py), from its module docstring and docs/history.md:
at step i the newest recorded sample is row i - 1; seasons are 5-minute trailing averages at
`now - season` and their highest over the horizons after it; ratio points are total reads / total
writes per period, unknown unless wholly inside the trace; rows with metrics unavailable are not
recorded.
"""

from __future__ import annotations

import pytest
from tests.unit.builders import make_spec

from rwscaler.sim.history import TraceHistory
from rwscaler.sim.trace import Row

STEP = 60.0


def spec(**trend: object) -> object:
    base = {"forecastSeconds": 120, "seasonsSeconds": [3600], "scaleDownLookaheadSeconds": 600}
    base.update(trend)
    return make_spec(behavior={"intervalSeconds": 60, "trend": base})


def rows(reads: list[float], writes: float = 10.0, down: range = range(0)) -> list[Row]:
    return [Row(i * STEP, r, writes, i not in down) for i, r in enumerate(reads)]


def test_a_season_ago_and_what_followed() -> None:
    # 1,000/s for 60 minutes, then 4,000/s from minute 62 on: a jump an hour ago at minute 2.
    reads = [1000.0] * 62 + [4000.0] * 60
    h = TraceHistory(rows(reads), spec(), STEP)  # type: ignore[arg-type]
    # horizons with a 60 s tick: up = 120 + 60 + 300 = 480 s (8 steps), down = 600 + 300 (15 steps)
    assert (h.up_s, h.down_s) == (480.0, 900.0)
    at = h.at(61)  # newest sample is row 60; an hour (60 steps) earlier is row 0
    (season,) = at.seasons
    assert season.period_s == 3600.0
    assert season.then == pytest.approx(1000.0)
    # Rows 0..8 hold the up peak: the 5-minute averages there are still 1,000 (the jump is at 62)
    assert season.peak_up == pytest.approx(1000.0)
    at = h.at(61 + 60)  # newest sample is row 120, a season earlier row 60; rows 60..68 and the jump at 62
    (season,) = at.seasons
    assert season.then == pytest.approx(1000.0)
    assert season.peak_up == pytest.approx(4000.0)  # the 5-minute average at row 66 is all 4,000
    assert at.now_qps == pytest.approx(4000.0)  # the same average now (rows 116..120)
    assert h.at(64).now_qps == pytest.approx((3 * 1000.0 + 2 * 4000.0) / 5)  # rows 59..63: mid-jump


def test_no_season_before_the_trace_has_one_behind_it() -> None:
    h = TraceHistory(rows([1000.0] * 30), spec(), STEP)  # type: ignore[arg-type]
    (season,) = h.at(20).seasons
    assert (season.then, season.peak_up, season.peak_down) == (None, None, None)


def test_rows_without_metrics_are_not_recorded() -> None:
    reads = [1000.0] * 120
    h = TraceHistory(rows(reads, down=range(0, 10)), spec(), STEP)  # type: ignore[arg-type]
    (season,) = h.at(65).seasons  # a season before the newest sample (row 64) is row 4: unrecorded
    assert season.then is None
    (season,) = h.at(75).seasons  # row 14: recorded (its 5-minute average covers rows 10..14)
    assert season.then == pytest.approx(1000.0)


def test_ratio_points_per_period_and_the_recent_shift() -> None:
    # A period of 10 minutes, 3 points, a shift span of 5 minutes; writes double from row 25 on.
    trend = {"windowSeconds": 1800, "periodSeconds": 600, "shiftSeconds": 300, "seasonsSeconds": []}
    writes = [10.0] * 25 + [20.0] * 5
    trace = [Row(i * STEP, 1000.0, w) for i, w in enumerate(writes)]
    h = TraceHistory(trace, spec(**trend), STEP)  # type: ignore[arg-type]
    ratios = h.at(30).ratios  # newest sample row 29: periods rows 0-9, 10-19, 20-29
    assert ratios is not None
    assert ratios.points == pytest.approx((100.0, 100.0, 10000.0 / 150.0))
    assert ratios.recent == pytest.approx(50.0)  # rows 25-29
    assert ratios.recent_before == pytest.approx(100.0)  # rows 15-19
    early = h.at(15).ratios  # newest row 14: only the last period (rows 5-14) is inside the trace
    assert early is not None and early.points[:2] == (None, None) and early.points[2] == pytest.approx(100.0)
