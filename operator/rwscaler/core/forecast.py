"""The read-load forecast: the recent slope, and the seasons (the same time yesterday, a week ago).

sizing.py calls `forecast_read_qps` every tick; the metrics adapter (the operator) and the
simulator's engine call `horizons` to know how far after "one season ago" to read the history,
and `SEASON_SMOOTHING_S` (defined with the spec) to know how to smooth it. Pure: the history arrives in the Observation.

- **Trend**: the present read QPS plus its slope (trends.climb_rate) times the up horizon.
- **Season** (each of `behavior.trend.seasonsSeconds` whose history is known): what followed
  the same moment one season ago, scaled by how today's load compares with then:
  `peak x growth`, where `peak` is the highest 5-minute averaged read QPS over the horizon
  after `now - season` (`horizons`), and `growth = now / then`: today's 5-minute average read
  QPS (`History.now_qps`; the present 60 s average when unknown) over the same average at
  `now - season` (like with like: a jump half inside one average and half inside the other
  would multiply the forecast), bounded to [1/2, 2] so one odd day cannot multiply the forecast without
  limit (a day twice as busy as the last is a spike, and the present load handles it).
- **Up** (provisioning): the highest of the trend over `forecastSeconds` (a replica asked for
  now serves after about the provisioning delay) and the seasons over `forecastSeconds` plus a
  tick (the history is read once a tick, so the next tick must not find the peak already past).
  While the present load is within what the seasons expected (up to `SEASON_MARGIN`, 10%, over
  their peak), their peak bounds the trend: a
  morning rush that comes as it came yesterday is provisioned for yesterday's peak, not for its
  own slope carried past it (before: one replica over, all day, in `morning-rush-3d`).
- **Hold** (scale-down): the highest of the seasons over `scaleDownLookaheadSeconds` (at least
  the up horizon): a scale-down keeps what the next hour needed one season ago, so a replica
  removed in a lull is not asked for again when the load returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from rwscaler.core.durations import format_seconds
from rwscaler.core.observation import History, Season
from rwscaler.core.spec import SEASON_SMOOTHING_S, ReadWriteWorkloadSpec

GROWTH_BOUNDS = (0.5, 2.0)
# The present load is "within what a season expected" up to 10% over its peak: a sample's noise
# (3% a 15 s sample) and a day's drift; further over, today is not yesterday and the trend rules.
SEASON_MARGIN = 0.1
DAY_S, WEEK_S = 86400.0, 7 * 86400.0


@dataclass(frozen=True, slots=True)
class Forecast:
    """The read load to provision for, and to keep, with what said so."""

    expected_qps: float  # the most read QPS expected over the up horizon
    horizon_s: float
    basis: str  # "present", "trend", "yesterday", "a week ago", "<duration> ago"
    hold_qps: float | None  # the most read QPS the seasons expect over the scale-down lookahead
    hold_horizon_s: float
    hold_basis: str | None


def trend_horizon(spec: ReadWriteWorkloadSpec) -> float:
    """How far ahead to provision: forecastSeconds (about a provisioning delay; 0: no forecast)."""
    return float(spec.behavior.trend.forecastSeconds)


def horizons(spec: ReadWriteWorkloadSpec, tick_s: float) -> tuple[float, float]:
    """(up, down): how long a stretch of history after `now - season` to take the peak of.

    The up stretch is the trend horizon plus a tick, the down stretch the scale-down lookahead (at least the
    up one); each is extended by SEASON_SMOOTHING_S, because the peak is taken of 5-minute
    trailing averages and the average that covers a moment ends up to 5 minutes after it (a
    jump at 08:00 shows in full in the average at 08:05)."""
    # One tick more than the trend looks ahead: the history is read once a tick.
    up = trend_horizon(spec) + max(tick_s, float(spec.behavior.intervalSeconds))
    down = max(float(spec.behavior.trend.scaleDownLookaheadSeconds), up)
    return up + SEASON_SMOOTHING_S, down + SEASON_SMOOTHING_S


def season_name(period_s: float) -> str:
    if period_s == DAY_S:
        return "yesterday"
    if period_s == WEEK_S:
        return "a week ago"
    return f"{format_seconds(period_s)} ago"


def _growth(now_qps: float, then: float | None) -> float | None:
    if then is None:
        return None
    if then <= 0:
        return 1.0 if now_qps <= 0 else GROWTH_BOUNDS[1]
    lo, hi = GROWTH_BOUNDS
    return min(max(now_qps / then, lo), hi)


def _seasonal(seasons: tuple[Season, ...], now_qps: float, up: bool) -> tuple[float, str] | None:
    best: tuple[float, str] | None = None
    for s in seasons:
        peak = s.peak_up if up else s.peak_down
        growth = _growth(now_qps, s.then)
        if peak is None or growth is None:
            continue
        expected = peak * growth
        if best is None or expected > best[0]:
            best = (expected, season_name(s.period_s))
    return best


def forecast_read_qps(
    read_qps: float, smoothed_qps: float, climb: float, horizon_s: float, history: History
) -> Forecast:
    """The forecast from the present read QPS, its smoothed level (the seasons' growth), its
    climb per second, the up horizon (the seasons' history carries its own) and the history."""
    trend = read_qps + climb * horizon_s
    expected, basis = (trend, "trend") if climb > 0 else (read_qps, "present")
    now = history.now_qps if history.now_qps is not None else smoothed_qps
    season = _seasonal(history.seasons, now, up=True)
    if season is not None and (season[0] > expected or read_qps <= season[0] * (1.0 + SEASON_MARGIN)):
        # While the load stays within what a season expected, the season's peak bounds the
        # trend: yesterday's ramp ended there, and a jump's slope would carry on past it. Never
        # under the present load, though: a forecast is what is coming on top of it.
        expected, basis = max(season[0], read_qps), season[1]
    hold = _seasonal(history.seasons, now, up=False)
    return Forecast(
        expected_qps=expected,
        horizon_s=horizon_s,
        basis=basis,
        hold_qps=hold[0] if hold else None,
        hold_horizon_s=history.horizon_down_s,
        hold_basis=hold[1] if hold else None,
    )
