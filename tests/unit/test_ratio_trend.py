"""The trend rules "reads gaining share" / "writes gaining share" (core/ratio_trend.py).

Expectations are the rules' numbers written out, not the module's constants: a slope test (a
least-squares line through log10(ratio) against the period's index, at least 3 known points, a
fitted change of at least 0.2 in log10 over the known span and R² at least 0.6) and a shift test
(|log10(recent / recent_before)| at least 0.2). Opposite verdicts cancel.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest

from rwscaler.core.observation import RatioHistory
from rwscaler.core.ratio_trend import RatioTrend, ratio_trend

WEEK = 7 * 86400.0
DAY = 86400.0
SHIFT = 3 * DAY


def geometric(start: float, end: float, n: int = 12) -> list[float]:
    return [start * (end / start) ** (i / (n - 1)) for i in range(n)]


def noisy(values: list[float], seed: int, noise: float = 0.05) -> tuple[float, ...]:
    rng = random.Random(seed)
    return tuple(v * (1 + rng.uniform(-noise, noise)) for v in values)


def line(change_log10: float, n: int = 12, at: float = 50.0) -> tuple[float, ...]:
    """A clean geometric line whose log10 moves by change_log10 from the first point to the last."""
    return tuple(at * 10 ** (change_log10 * i / (n - 1)) for i in range(n))


def trend(
    points: tuple[float | None, ...] | list[float],
    recent: float | None = None,
    recent_before: float | None = None,
    period_s: float = WEEK,
) -> RatioTrend:
    return ratio_trend(
        RatioHistory(
            period_s=period_s,
            points=tuple(points),
            shift_s=SHIFT,
            recent=recent,
            recent_before=recent_before,
        )
    )


# --- the slope test ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_the_seeds_decline_from_100_to_30_over_12_weeks_is_writes_gaining_share(seed: int) -> None:
    result = trend(noisy(geometric(100, 30), seed))
    assert result.direction == -1
    assert result.known
    assert result.points == 12
    assert result.shift_log10 is None
    # log10(30/100) = -0.52, give or take the 5% noise; the line explains nearly all of it.
    assert result.change_log10 == pytest.approx(-0.523, abs=0.06)
    assert result.fit_r2 is not None and result.fit_r2 > 0.9


def test_the_seeds_decline_reads_as_a_sentence() -> None:
    result = trend(noisy(geometric(100, 30), seed=1))
    assert result.message.startswith("read:write ratio fell from ")
    assert " over 11 weeks (fit R² " in result.message
    assert result.message.endswith(": writes are gaining share")


@pytest.mark.parametrize("seed", range(10))
def test_the_reverse_from_30_to_100_is_reads_gaining_share(seed: int) -> None:
    result = trend(noisy(geometric(30, 100), seed))
    assert result.direction == 1
    assert result.change_log10 == pytest.approx(0.523, abs=0.06)
    assert result.message.startswith("read:write ratio rose from ")
    assert result.message.endswith(": reads are gaining share")


@pytest.mark.parametrize("seed", range(10))
def test_a_stationary_ratio_with_noise_does_not_fire(seed: int) -> None:
    result = trend(noisy([50.0] * 12, seed))
    assert result.direction == 0
    assert result.known
    assert result.change_log10 is not None and abs(result.change_log10) < 0.2
    assert "neither reads nor writes are gaining share" in result.message


@pytest.mark.parametrize("odd", range(12))
def test_a_single_odd_week_at_twice_the_ratio_does_not_fire(odd: int) -> None:
    points = [50.0] * 12
    points[odd] = 100.0
    assert trend(points).direction == 0
    points[odd] = 25.0
    assert trend(points).direction == 0


def test_a_last_week_at_five_times_moves_the_line_enough_but_the_r2_guard_holds() -> None:
    # One odd last week: the line moves by 11 x 5.5 / 143 x log10(5) = 0.30 (past 0.2), but it
    # explains only 5.5² / (143 x 11/12) = 23% of the variance, under 0.6.
    points = [50.0] * 11 + [250.0]
    result = trend(points)
    assert result.change_log10 == pytest.approx(0.2957, abs=1e-3)
    assert result.fit_r2 == pytest.approx(0.2308, abs=1e-3)
    assert result.direction == 0
    assert "R² is under 0.6" in result.message


@pytest.mark.parametrize(
    ("change", "direction"),
    [(0.19, 0), (0.21, 1), (-0.19, 0), (-0.21, -1), (0.199, 0), (0.201, 1), (-0.199, 0), (-0.201, -1)],
)
def test_the_fitted_change_fires_from_0_2_in_log10(change: float, direction: int) -> None:
    result = trend(line(change))
    assert result.change_log10 == pytest.approx(change)
    assert result.fit_r2 == pytest.approx(1.0)
    assert result.direction == direction


@pytest.mark.parametrize(("zigzag", "direction"), [(0.09, 1), (0.10, 0)])
def test_the_fit_must_explain_at_least_60_percent(zigzag: float, direction: int) -> None:
    # A rising line (0.4 in log10 over 11 weeks) with a week-on-week zig-zag around it: ±0.09
    # leaves R² 0.61, ±0.10 leaves 0.56; the fitted change is past 0.2 either way.
    xs = list(range(12))
    logs = [0.4 * i / 11 + zigzag * (-1) ** i for i in xs]
    r2 = statistics.correlation(xs, logs) ** 2
    assert r2 == pytest.approx(0.6148 if direction else 0.5574, abs=1e-3)
    result = trend([10 ** (1.7 + y) for y in logs])
    assert result.fit_r2 == pytest.approx(r2)
    assert result.change_log10 is not None and result.change_log10 > 0.3
    assert result.direction == direction


def test_missing_periods_are_skipped_and_keep_their_place_in_time() -> None:
    # On a clean line from 100:1 to 30:1, five known weeks at 0, 2, 5, 9 and 11: the fit uses the
    # week's index, so they lie exactly on it (by position among the known points they would not).
    full = geometric(100, 30)
    points: list[float | None] = [None] * 12
    for i in (0, 2, 5, 9, 11):
        points[i] = full[i]
    result = trend(tuple(points))
    assert result.points == 5
    assert result.known
    assert result.change_log10 == pytest.approx(math.log10(0.3))
    assert result.fit_r2 == pytest.approx(1.0)
    assert result.direction == -1
    assert "over 11 weeks" in result.message


def test_the_span_runs_from_the_first_known_point_to_the_last() -> None:
    points: list[float | None] = [None, None, *geometric(100, 30, n=8), None, None]
    result = trend(tuple(points))
    assert result.points == 8
    assert result.change_log10 == pytest.approx(math.log10(0.3))
    assert "from 100:1 to 30:1 over 7 weeks" in result.message


def test_unrecordable_ratios_are_skipped_like_missing_ones() -> None:
    # No writes (inf), no reads (0), and garbage (negative, NaN) have no logarithm.
    points: list[float | None] = list(noisy(geometric(100, 30), seed=3))
    points[2], points[4], points[6], points[8] = math.inf, 0.0, -5.0, math.nan
    result = trend(tuple(points))
    assert result.points == 8
    assert result.direction == -1


def test_the_period_is_named_in_words() -> None:
    result = trend(geometric(100, 30), period_s=DAY)
    assert "over 11 days" in result.message


# --- too little history ------------------------------------------------------------------------


def test_two_known_points_are_not_enough() -> None:
    result = trend((None,) * 10 + (100.0, 10.0))
    assert not result.known
    assert result.direction == 0
    assert result.points == 2
    assert result.change_log10 is None and result.fit_r2 is None and result.shift_log10 is None
    assert "not enough history" in result.message
    assert "2 of 12 points known" in result.message


def test_five_known_points_are_enough_and_four_are_not() -> None:
    # docs/decisions.md: at least 5 known points (with 4, one odd end week explains 60%).
    result = trend((None,) * 7 + (100.0, 70.0, 50.0, 35.0, 25.0))
    assert result.known
    assert result.direction == -1
    four = trend((None,) * 8 + (100.0, 70.0, 50.0, 35.0))
    assert not four.known
    assert four.direction == 0


def test_one_odd_end_week_after_four_flat_ones_does_not_fire() -> None:
    assert trend((None,) * 7 + (50.0, 50.0, 50.0, 50.0, 100.0)).direction == 0


def test_no_history_is_unknown() -> None:
    result = ratio_trend(None)
    assert not result.known
    assert result.direction == 0
    assert result.points == 0
    assert result.message


def test_a_recent_shift_is_judged_even_without_enough_points() -> None:
    result = trend((None,) * 11 + (50.0,), recent=25.0, recent_before=50.0)
    assert result.known
    assert result.direction == -1
    assert result.change_log10 is None
    assert result.points == 1
    assert result.message == (
        "read:write ratio is 25:1 over the last 3 days against 50:1 over the same span 1 week earlier: "
        "writes are gaining share"
    )


def test_a_shift_with_one_side_unrecorded_is_no_shift() -> None:
    assert not trend((50.0, 50.0), recent=25.0, recent_before=None).known
    assert not trend((50.0, 50.0), recent=None, recent_before=50.0).known
    assert not trend((50.0, 50.0), recent=25.0, recent_before=0.0).known
    assert not trend((50.0, 50.0), recent=math.inf, recent_before=50.0).known
    flat = trend([50.0] * 12, recent=math.inf, recent_before=50.0)
    assert flat.shift_log10 is None
    assert "last 3 days" not in flat.message


# --- the shift test ----------------------------------------------------------------------------


def test_writes_doubling_within_the_last_3_days_is_writes_gaining_share() -> None:
    result = trend(noisy([50.0] * 12, seed=4), recent=25.0, recent_before=50.0)
    assert result.shift_log10 == pytest.approx(-0.30103)
    assert result.direction == -1
    assert "25:1 over the last 3 days against 50:1 over the same span 1 week earlier" in result.message
    assert result.message.endswith(": writes are gaining share")


def test_reads_doubling_within_the_last_3_days_is_reads_gaining_share() -> None:
    result = trend(noisy([50.0] * 12, seed=4), recent=100.0, recent_before=50.0)
    assert result.direction == 1


@pytest.mark.parametrize("recent", [47.5, 50.0, 52.5])
def test_a_stationary_weekly_cycle_does_not_fire(recent: float) -> None:
    # The last 3 days against the same 3 days a week earlier: the cycle cancels, within 5%.
    result = trend(noisy([50.0] * 12, seed=5), recent=recent, recent_before=50.0)
    assert result.direction == 0
    assert result.known


@pytest.mark.parametrize(
    ("shift", "direction"),
    [(0.19, 0), (0.21, 1), (-0.19, 0), (-0.21, -1), (0.199, 0), (0.201, 1), (-0.199, 0), (-0.201, -1)],
)
def test_the_shift_fires_from_0_2_in_log10(shift: float, direction: int) -> None:
    result = trend([50.0] * 12, recent=40.0 * 10**shift, recent_before=40.0)
    assert result.shift_log10 == pytest.approx(shift)
    assert result.direction == direction


# --- both tests --------------------------------------------------------------------------------


def test_a_long_decline_and_a_recent_rise_conflict() -> None:
    result = trend(noisy(geometric(100, 30), seed=6), recent=60.0, recent_before=25.0)
    assert result.known
    assert result.direction == 0
    assert result.change_log10 is not None and result.change_log10 < -0.2
    assert result.shift_log10 is not None and result.shift_log10 > 0.2
    assert "disagree" in result.message


def test_a_long_rise_and_a_recent_fall_conflict() -> None:
    result = trend(noisy(geometric(30, 100), seed=6), recent=25.0, recent_before=60.0)
    assert result.direction == 0
    assert "disagree" in result.message


def test_a_long_decline_and_a_recent_fall_agree() -> None:
    result = trend(noisy(geometric(100, 30), seed=6), recent=15.0, recent_before=30.0)
    assert result.direction == -1
    assert result.message.endswith(": writes are gaining share")


def test_a_long_decline_with_a_quiet_recent_span_is_still_writes_gaining_share() -> None:
    result = trend(noisy(geometric(100, 30), seed=6), recent=31.0, recent_before=30.0)
    assert result.direction == -1


# --- the seed's chart as drawn ------------------------------------------------------------------


def test_the_seeds_chart_as_drawn_fires_on_its_recent_half() -> None:
    # The seed's ASCII chart (section 7) read off its rows: about 30 in week 1, 100 in week 4,
    # back to 30 from week 9, captioned "Ratio declining". A straight line through the whole
    # window explains only 20% of that hump; its recent half (the newest 6 of 11 points) is a
    # clear fall, and docs/decisions.md tries that half when the whole window does not fire.
    chart = (30.0, 50.0, 75.0, 100.0, 75.0, 75.0, 50.0, 50.0, 30.0, 30.0, 30.0)
    result = trend(chart)
    assert result.direction == -1
    assert "writes are gaining share" in result.message
    # The rising first half alone is reads gaining share: the recent half is what counts.
    assert trend(chart[:5] + (100.0,) * 6).direction in (0, 1)
