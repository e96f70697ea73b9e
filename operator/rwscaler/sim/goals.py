"""The goals `rwscaler bench` prints: rwscaler against keda-qps and the oracle, per scenario.

`command_bench.run` calls `scenario_goals` once per scenario with that scenario's results and
prints the lines; nothing here decides the exit status (the goals are for planning, and CI runs
`make bench`). Each line carries the measured ratio, so the size of a gap is visible.

- predictable scenarios: read-violation minutes at most 0.3x keda-qps's, at no more of
  keda-qps's replica-hours;
- unpredictable ones: read-violation minutes no more than keda-qps's, zero stale reads, no
  scale-up while write-bound;
- every scenario: replica-hours at most 1.15x the oracle's;
- kept from the first bench: no scale-up in the write surge's window, and (new, for the outage)
  no scale-down while Prometheus is down;
- the trend rules (ratio_trend.py): "writes gaining share" fires on ratio-drift-12w (the seed's
  12-week chart) and on write-shift-2w (writes doubling within a day), there not before the
  shift; neither fires on a stationary daily or weekly cycle (daily-cycle-3d,
  morning-rush-3d, weekly-pattern-2w). drift-read-heavy (6 days) is too short for the default
  trend (5 weekly points, or 3 days against the same 3 days a week earlier: 10 days).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rwscaler.sim.engine import Result
from rwscaler.sim.report import scale_ups_in_window
from rwscaler.sim.trace import Scenario

PREDICTABLE_VIOLATION_SHARE = 0.3
ORACLE_COST_RATIO = 1.15
WRITE_SURGE = "write-surge"
# Which trend rule each scenario should fire (None: neither, ever).
TREND_EXPECTED: dict[str, str | None] = {
    "ratio-drift-12w": "WriteRatioRising",
    "write-shift-2w": "WriteRatioRising",
    "daily-cycle-3d": None,
    "morning-rush-3d": None,
    "weekly-pattern-2w": None,
}
TREND_RULES = ("ReadRatioRising", "WriteRatioRising")
OURS, KEDA, ORACLE = "rwscaler", "keda-qps", "oracle"


@dataclass(frozen=True)
class Goal:
    scenario: str
    kind: str
    goal: str
    measured: str
    met: bool


def ratio_text(ours: float, theirs: float) -> str:
    """`x0.42`; `x-` when both are 0; `xinf` when only theirs is 0."""
    if theirs:
        return f"x{ours / theirs:.2f}"
    return "x-" if not ours else "xinf"


def scale_ups_while_write_bound(result: Result) -> int:
    """Steps whose decision scaled up while the decision said WriteBottleneck."""
    ups, prev = 0, None
    for entry in result.timeline:
        if prev is not None and entry["replicas"] > prev and "WriteBottleneck" in entry["conditions"]:
            ups += 1
        prev = entry["replicas"]
    return ups


def scale_downs_while_blind(result: Result) -> int:
    """Scale-downs at steps where the policies saw no metrics (a Prometheus outage)."""
    downs, prev = 0, None
    for entry in result.timeline:
        if prev is not None and entry["replicas"] < prev and not entry["metrics_available"]:
            downs += 1
        prev = entry["replicas"]
    return downs


def _violations(goal: str, scn: Scenario, ours: Result, keda: Result, share: float) -> Goal:
    a, b = ours.summary.read_slo_violation_minutes, keda.summary.read_slo_violation_minutes
    return Goal(scn.name, scn.kind, goal, f"{a:.2f} vs {b:.2f} min ({ratio_text(a, b)})", a <= share * b)


def scenario_goals(scn: Scenario, results: Mapping[str, Result]) -> list[Goal]:
    """The goal lines of one scenario, from its results by policy name."""
    ours, oracle = results[OURS], results[ORACLE]
    keda = results.get(KEDA)
    goals: list[Goal] = []

    def add(goal: str, measured: str, met: bool) -> None:
        goals.append(Goal(scn.name, scn.kind, goal, measured, met))

    if keda is None and scn.kind in ("predictable", "unpredictable"):
        add("compared with keda-qps", "n/a: the workload has no targetReadQPSPerReplica", False)
    elif keda is not None and scn.kind == "predictable":
        goals.append(_violations("read viol <= 0.3 x keda-qps", scn, ours, keda, PREDICTABLE_VIOLATION_SHARE))
        a, b = ours.summary.replica_hours, keda.summary.replica_hours
        add("replica-h <= keda-qps", f"{a:.1f} vs {b:.1f} h ({ratio_text(a, b)})", a <= b)
    elif keda is not None and scn.kind == "unpredictable":
        goals.append(_violations("read viol <= keda-qps", scn, ours, keda, 1.0))
    if scn.kind == "unpredictable":
        stale = ours.summary.stale_read_fraction
        add("zero stale reads", f"{100 * stale:.3f}% of reads stale", stale == 0)
        ups = scale_ups_while_write_bound(ours)
        add("no scale-up while write-bound", f"{ups} scale-up(s)", ups == 0)
    if scn.name == WRITE_SURGE:
        ups = scale_ups_in_window(ours, scn) or 0
        add("no scale-up in the write surge", f"{ups} scale-up(s) in the surge window", ups == 0)
    if any(not row.metrics_available for row in scn.rows):
        downs = scale_downs_while_blind(ours)
        add("no scale-down while Prometheus is down", f"{downs} scale-down(s)", downs == 0)
    if scn.name in TREND_EXPECTED:
        expected = TREND_EXPECTED[scn.name]
        fired = {rule: sum(1 for _, r in ours.fired if r == rule) for rule in TREND_RULES}
        seen = ", ".join(f"{rule} at {n} step(s)" for rule, n in fired.items() if n) or "none fired"
        if expected is None:
            add("no trend rule on a stationary cycle", seen, not any(fired.values()))
        else:
            wrong = [r for r in TREND_RULES if r != expected and fired[r]]
            # With a window (the shift), the rule must not fire before the shift happened.
            early = [t for t, r in ours.fired if r in TREND_RULES and scn.window and t < scn.window[0]]
            first = min((t for t, r in ours.fired if r == expected), default=None)
            if first is not None:
                seen += f", first at day {first / 86400:.1f}"
            add(
                f"{expected} fires (and not the other)", seen, fired[expected] > 0 and not wrong and not early
            )
    a, b = ours.summary.replica_hours, oracle.summary.replica_hours
    add(
        "replica-h <= 1.15 x oracle", f"{a:.1f} vs {b:.1f} h ({ratio_text(a, b)})", a <= ORACLE_COST_RATIO * b
    )
    return goals
