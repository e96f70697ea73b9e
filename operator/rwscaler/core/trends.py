""" "Rising" and "stable", defined once, with explicit thresholds (DESIGN.md: not guessed per call site).

A latency side (read or write) is RISING when either
  - it breaches its objective beyond the tolerance band: p99 > objective x (1 + tolerance), or
  - it is approaching the objective and climbing: p99 >= APPROACH x objective and its fast
    average exceeds its slow average by more than the tolerance (a positive slope over the
    slow window).
Otherwise it is STABLE. "Breached" alone (the first bullet) is what latency-driven scaling acts on.

The write side is also RISING while write traffic surges: write QPS's fast average more than
SURGE above its slow one and growing faster than reads by more than the tolerance. Replay work
lands on every replica, so a write surge slows reads before the primary's own latency breaches;
read latency rising then is not a read-capacity problem, and replicas would only add replay and
WAL-sender load. (Traffic that grows on both sides alike, as over a day, is not a write surge.)

Trends over time use a pair of exponentially weighted moving averages (EWMA) with time-based
smoothing (alpha = 1 - exp(-dt / tau)), so an irregular tick spacing does not bias them. For a
linear ramp x(t) = a + b t, an EWMA with time constant tau lags the signal by b x tau, so
(fast - slow) / (tau_slow - tau_fast) estimates the slope b without storing a history.
  - read QPS: tau 60 s and 300 s; the slope feeds the forecast for pre-provisioning, as the
    lower of that estimate and the fast average's own rate over the last tick (`climb_rate`: a
    ramp, not a jump);
  - latency: tau 60 s and 300 s; the climb above.
Whether reads or writes gain share over weeks is not judged here but from Prometheus's history
(ratio_trend.py): no average kept tick by tick stretches to weeks across restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from rwscaler.core.memory import Ewma

APPROACH = 0.8  # "approaching" an objective: at least 80% of it
QPS_TAU = (60.0, 300.0)
SURGE = 0.25  # write traffic 25% above its slow average, outgrowing reads, is a surge
LATENCY_TAU = (60.0, 300.0)


class Trend(StrEnum):
    RISING = "rising"
    STABLE = "stable"
    UNKNOWN = "unknown"


def update_ewma(prev: Ewma | None, value: float, dt: float, now: float, taus: tuple[float, float]) -> Ewma:
    if prev is None:
        return Ewma(fast=value, slow=value, since=now)
    fast_tau, slow_tau = taus
    a_fast = 1.0 - math.exp(-max(dt, 0.0) / fast_tau)
    a_slow = 1.0 - math.exp(-max(dt, 0.0) / slow_tau)
    return Ewma(
        fast=prev.fast + a_fast * (value - prev.fast),
        slow=prev.slow + a_slow * (value - prev.slow),
        since=prev.since,
    )


def slope(e: Ewma | None, taus: tuple[float, float]) -> float:
    """Estimated slope per second of the averaged signal (0 when there is no history)."""
    if e is None:
        return 0.0
    return (e.fast - e.slow) / (taus[1] - taus[0])


def climb_rate(before: Ewma | None, after: Ewma | None, dt: float, taus: tuple[float, float]) -> float:
    """The slope per second two views of the averages agree on, never negative (0 without history).

    `before` and `after` are the averages before and after this tick's sample, `dt` apart. On a
    linear ramp the fast average moves at the ramp's slope, and it leads the slow one by slope x
    (tau_slow - tau_fast): both views are the slope. After a jump to a new level the slow average
    lags for minutes, so the gap keeps reporting a climb, while the fast average stops moving
    within a few fast time constants. The lower of the two extrapolates a ramp, not a jump that
    is over.
    """
    if after is None:
        return 0.0
    gap_slope = slope(after, taus)
    if before is None or dt <= 0:
        return max(0.0, gap_slope)
    return max(0.0, min(gap_slope, (after.fast - before.fast) / dt))


@dataclass(frozen=True, slots=True)
class SideState:
    """One latency side at one tick."""

    trend: Trend
    breached: bool
    level: float | None  # p99 / objective
    # Why the side is rising besides its latency (core/diagnosis.py): clients waiting for a read
    # pool connection, lock contention on the primary; None: its latency (or a write surge).
    cause: str | None = None
    # Write QPS's fast average over its slow one, when a write surge is what makes the side rise
    # (its latency alone would not): the condition's message says so, not just the p99.
    surge: float | None = None


def latency_side(p99: float | None, objective: float, tolerance: float, history: Ewma | None) -> SideState:
    if p99 is None:
        return SideState(Trend.UNKNOWN, breached=False, level=None)
    level = p99 / objective
    breached = level > 1.0 + tolerance
    climbing = history is not None and history.fast > history.slow * (1.0 + tolerance)
    rising = breached or (level >= APPROACH and climbing)
    return SideState(Trend.RISING if rising else Trend.STABLE, breached=breached, level=level)


def write_side(latency: SideState, writes: Ewma | None, reads: Ewma | None, tolerance: float) -> SideState:
    """The write side's state: its latency, or a write traffic surge (see the module docstring)."""
    if latency.trend is not Trend.STABLE or writes is None or writes.slow <= 0:
        return latency
    write_growth = writes.fast / writes.slow
    read_growth = reads.fast / reads.slow if reads is not None and reads.slow > 0 else 1.0
    if write_growth > 1.0 + SURGE and write_growth > read_growth * (1.0 + tolerance):
        return SideState(
            Trend.RISING,
            breached=latency.breached,
            level=latency.level,
            cause=latency.cause,
            surge=write_growth,
        )
    return latency
