"""The built-in scenarios have the shape their names promise, are deterministic, and are
classified predictable or unpredictable as docs/simulator.md says; together they stay small
enough for `make bench` to run in about a minute.

Times and levels below are read off the scenario descriptions, not imported from scenarios.py.
"""

from __future__ import annotations

from itertools import pairwise
from statistics import mean

import pytest

from rwscaler.sim.scenarios import SCENARIOS, Row, scenario

DAY = 86400.0
WEEK = 7 * DAY

PREDICTABLE = {
    "morning-rush-3d",
    "diurnal-catalog", "drift-read-heavy", "write-dominated-ingest", "daily-cycle-3d",
    "steady-climb-week", "weekly-pattern-2w", "ratio-drift-12w", "write-shift-2w",
}  # fmt: skip
UNPREDICTABLE = {
    "read-flash-spike",
    "write-surge",
    "lag-storm",
    "prometheus-outage",
    "flash-spike-no-warning",
}


def between(rows: tuple[Row, ...], start: float, end: float) -> list[Row]:
    return [r for r in rows if start <= r.t < end]


def test_every_scenario_is_classified() -> None:
    assert {n for n in SCENARIOS if scenario(n).kind == "predictable"} == PREDICTABLE
    assert {n for n in SCENARIOS if scenario(n).kind == "unpredictable"} == UNPREDICTABLE


@pytest.mark.parametrize("name", ["daily-cycle-3d", "ratio-drift-12w", "flash-spike-no-warning"])
def test_scenarios_are_deterministic(name: str) -> None:
    assert scenario(name).rows == scenario(name).rows


def test_the_suite_stays_small_enough_for_make_bench() -> None:
    # About 0.6 ms per row for the five policies on this 2-core machine (85,000 rows took 52 s
    # per model set on 5 December 2026, with the simulated history): 90,000 rows keeps make bench
    # (two model sets) under two minutes.
    assert sum(len(scenario(n).rows) for n in SCENARIOS) <= 90_000


def test_daily_cycle_repeats_for_three_days() -> None:
    rows = scenario("daily-cycle-3d").rows
    assert rows[-1].t == pytest.approx(3 * DAY)
    days = [between(rows, d * DAY, (d + 1) * DAY) for d in range(3)]
    means = [mean(r.read_qps for r in day) for day in days]
    assert max(means) / min(means) < 1.02
    for d, day in enumerate(days):
        night = mean(r.read_qps for r in between(day, d * DAY + 1.5 * 3600, d * DAY + 2.5 * 3600))
        afternoon = mean(r.read_qps for r in between(day, d * DAY + 13.5 * 3600, d * DAY + 14.5 * 3600))
        assert night == pytest.approx(1000, rel=0.05)
        assert afternoon == pytest.approx(5800, rel=0.05)


def test_steady_climb_rises_all_week() -> None:
    rows = scenario("steady-climb-week").rows
    assert rows[-1].t == pytest.approx(WEEK)
    means = [mean(r.read_qps for r in between(rows, d * DAY, (d + 1) * DAY)) for d in range(7)]
    assert all(b > a for a, b in pairwise(means))
    assert mean(r.read_qps for r in between(rows, 0, 3600)) == pytest.approx(1500, rel=0.05)
    assert mean(r.read_qps for r in between(rows, WEEK - 3600, WEEK + 1)) == pytest.approx(7000, rel=0.05)


def test_weekly_pattern_weekends_are_lower() -> None:
    rows = scenario("weekly-pattern-2w").rows
    assert rows[-1].t == pytest.approx(2 * WEEK)
    daily = [mean(r.read_qps for r in between(rows, d * DAY, (d + 1) * DAY)) for d in range(14)]
    weekend = {5, 6, 12, 13}  # the trace starts on a Monday
    assert max(daily[d] for d in weekend) < 0.7 * min(daily[d] for d in range(14) if d not in weekend)
    weekdays = [daily[d] for d in range(14) if d not in weekend]
    assert max(weekdays) / min(weekdays) < 1.02


def test_ratio_drift_falls_from_100_to_30_over_12_weeks() -> None:
    rows = scenario("ratio-drift-12w").rows
    assert rows[-1].t == pytest.approx(12 * WEEK)

    def ratio(week: int) -> float:
        part = between(rows, week * WEEK, (week + 1) * WEEK)
        return sum(r.read_qps for r in part) / sum(r.write_qps for r in part)

    weekly = [ratio(w) for w in range(12)]
    assert all(b < a for a, b in pairwise(weekly))
    first_day = between(rows, 0, DAY)
    last_day = between(rows, 12 * WEEK - DAY, 12 * WEEK + 1)
    assert sum(r.read_qps for r in first_day) / sum(r.write_qps for r in first_day) == pytest.approx(
        100, rel=0.05
    )
    assert sum(r.read_qps for r in last_day) / sum(r.write_qps for r in last_day) == pytest.approx(
        30, rel=0.05
    )


def test_flash_spike_comes_with_no_warning() -> None:
    scn = scenario("flash-spike-no-warning")
    rows = scn.rows
    spike_at = 1.5 * 3600
    before = between(rows, 0, spike_at)
    # Flat before the step: nothing hints at it (noise only, no ramp).
    assert all(abs(r.read_qps - 1500) < 0.1 * 1500 for r in before)
    assert abs(mean(r.read_qps for r in before[-40:]) - mean(r.read_qps for r in before[:40])) < 30
    # The step: one row later reads are at 6,000/s, and stay there for 30 minutes.
    during = between(rows, spike_at + 15, spike_at + 15 + 1800)
    assert during[0].t == spike_at + 15
    assert all(r.read_qps > 0.9 * 6000 for r in during)
    assert scn.window is not None and scn.window[0] == spike_at


def test_write_shift_doubles_writes_within_a_day_on_day_11() -> None:
    rows = scenario("write-shift-2w").rows
    before = [r.read_qps / r.write_qps for r in between(rows, 4 * DAY, 11 * DAY)]
    after = [r.read_qps / r.write_qps for r in between(rows, 12 * DAY, 14 * DAY)]
    assert mean(before) == pytest.approx(60, rel=0.05)
    assert mean(after) == pytest.approx(30, rel=0.05)
