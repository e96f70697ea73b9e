"""Fit the simulator's latency model to measurements of a real database, and say how well it fits.

`make calibrate` (tests/support/calibrate.py) measures real PostgreSQL here: read-only pgbench on
a streaming replica at several fractions of its saturation throughput, and a write load on the
primary. This module is the pure half: from those points it fits the model's parameters
(`ModelParams.replicaReadCapacity`, `readBaseLatencyMs`, `primaryWriteCapacity`,
`writeBaseLatencyMs`) and renders predicted against measured p99, so that docs/calibration.md and
the command's output show where the model follows the database and where it cannot.

The model (rwscaler.sim.model): p99(u) = base / (1 - u) below the knee, u = throughput / capacity.
Both are fitted on the points measured below saturation (served < 95% of the measured saturation
throughput), minimizing the squared error of log p99, so that 2x too high and 2x too low weigh
the same: for a candidate capacity, log p99 = log base - log(1 - u) makes the best base a mean,
log base = mean(log(p99 x (1 - u))), and the capacity is searched on a grid from 0.6x to 1.5x the
measured saturation throughput (a server can saturate below the knee the model puts at u = 1:
the client competes for the same cores here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rwscaler.sim.model import P99_KNEE, p99

# Points at or above this utilization are saturated: the model's knee, where it stops following a
# server whose queue grows without bound and whose p99 is then set by the test's length.
FIT_BELOW_UTILIZATION = 0.95
# The goal for the fit: predicted p99 within 30% of measured below saturation.
GOAL_RELATIVE_ERROR = 0.30


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """One measured load level: what was offered, what was served, and the p99 latency seen."""

    offered_tps: float
    served_tps: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class SideFit:
    """The fitted capacity and idle p99 of one side, and each point's prediction."""

    capacity_tps: float
    base_ms: float
    points: tuple[LoadPoint, ...]
    saturation_tps: float  # measured; the points at or above 95% of it are not fitted

    def utilization(self, point: LoadPoint) -> float:
        return point.served_tps / self.capacity_tps

    def predicted_ms(self, point: LoadPoint) -> float:
        return p99(self.base_ms, self.utilization(point)) * 1000.0

    def relative_error(self, point: LoadPoint) -> float:
        return self.predicted_ms(point) / point.p99_ms - 1.0

    def is_fitted(self, point: LoadPoint) -> bool:
        return point.served_tps < FIT_BELOW_UTILIZATION * self.saturation_tps

    def fitted(self) -> tuple[LoadPoint, ...]:
        """The points the fit used: below saturation."""
        return tuple(p for p in self.points if self.is_fitted(p))

    def worst_error(self) -> float | None:
        errors = [abs(self.relative_error(p)) for p in self.fitted()]
        return max(errors) if errors else None


CAPACITY_GRID = tuple(0.6 + 0.01 * i for i in range(91))  # x the measured saturation throughput


def _base_for(capacity: float, points: Sequence[LoadPoint]) -> float | None:
    """The least-squares idle p99 (log space) for this capacity, or None if a point would be past the knee."""
    utilizations = [p.served_tps / capacity for p in points]
    if max(utilizations) >= P99_KNEE:
        return None
    logs = [math.log(p.p99_ms * (1.0 - u)) for p, u in zip(points, utilizations, strict=True)]
    return math.exp(sum(logs) / len(logs))


def _log_error(capacity: float, base: float, points: Sequence[LoadPoint]) -> float:
    return sum(math.log(p99(base, p.served_tps / capacity) * 1000.0 / p.p99_ms) ** 2 for p in points)


def fit_side(saturation_tps: float, points: Sequence[LoadPoint]) -> SideFit:
    """Capacity and idle p99 fitted on the points below saturation (see the module docstring)."""
    if saturation_tps <= 0:
        raise ValueError("saturation throughput must be positive")
    below = [p for p in points if 0 < p.served_tps < FIT_BELOW_UTILIZATION * saturation_tps and p.p99_ms > 0]
    if len(below) < 2:
        raise ValueError("fewer than two measured points below saturation: nothing to fit")
    best: tuple[float, float, float] | None = None  # (error, capacity, base)
    for factor in CAPACITY_GRID:
        capacity = factor * saturation_tps
        base = _base_for(capacity, below)
        if base is None:
            continue
        error = _log_error(capacity, base, below)
        if best is None or error < best[0]:
            best = (error, capacity, base)
    if best is None:
        raise ValueError("no capacity on the grid keeps the measured points below the model's knee")
    _, capacity, base = best
    return SideFit(capacity_tps=capacity, base_ms=base, points=tuple(points), saturation_tps=saturation_tps)


def render(name: str, fit: SideFit) -> str:
    """Predicted against measured p99 for each load level of one side, as a table."""
    lines = [
        f"{name}: measured saturation {fit.saturation_tps:,.0f} transactions/s; fitted capacity "
        f"{fit.capacity_tps:,.0f}/s, idle p99 {fit.base_ms:.3f} ms",
        f"  {'offered/s':>10} {'served/s':>10} {'u':>5} {'measured p99':>13} {'model p99':>10} {'error':>7}",
    ]
    for p in fit.points:
        u = fit.utilization(p)
        mark = "" if fit.is_fitted(p) else "  (saturated: not fitted)"
        lines.append(
            f"  {p.offered_tps:>10,.0f} {p.served_tps:>10,.0f} {u:>5.2f} {p.p99_ms:>10.3f} ms "
            f"{fit.predicted_ms(p):>7.3f} ms {fit.relative_error(p):>+6.0%}{mark}"
        )
    worst = fit.worst_error()
    if worst is not None:
        verdict = "yes" if worst <= GOAL_RELATIVE_ERROR else "NO"
        lines.append(
            f"  worst error below saturation: {worst:.0%} (goal: within {GOAL_RELATIVE_ERROR:.0%}): {verdict}"
        )
    return "\n".join(lines)
