"""`rwscaler bench`'s goal lines (goals.py): which goals each kind of scenario gets, the ratio each
line shows, and the thresholds (0.3x keda-qps on predictable scenarios, no more than keda-qps on
unpredictable ones, 1.15x the oracle everywhere). Results are built by hand, so these run fast;
`make bench` itself is not run here (it takes tens of seconds).
"""

from __future__ import annotations

from typing import Any

from rwscaler.sim.engine import Result, Summary
from rwscaler.sim.goals import Goal, ratio_text, scenario_goals
from rwscaler.sim.scenarios import Kind, Row, Scenario


def make_scenario(name: str, kind: Kind, blind: bool = False) -> Scenario:
    rows = tuple(Row(15.0 * i, 1000.0, 10.0, not (blind and i == 1)) for i in range(3))
    return Scenario(name, "test", rows, kind=kind)


def make_result(
    policy: str, viol: float, hours: float, timeline: list[dict[str, Any]] | None = None
) -> Result:
    summary = Summary(read_slo_violation_minutes=viol, replica_hours=hours)
    return Result(policy, "test", summary, timeline or [])


def by_goal(goals: list[Goal]) -> dict[str, Goal]:
    return {g.goal: g for g in goals}


def entry(replicas: int, conditions: list[str], metrics: bool = True) -> dict[str, Any]:
    return {"t": 0.0, "replicas": replicas, "conditions": conditions, "metrics_available": metrics}


def test_ratio_text() -> None:
    assert ratio_text(3, 10) == "x0.30"
    assert ratio_text(0, 0) == "x-"
    assert ratio_text(2, 0) == "xinf"


def test_predictable_goals_compare_with_keda_qps_at_0_3x() -> None:
    scn = make_scenario("daily", "predictable")
    results = {
        "rwscaler": make_result("rwscaler", 3.0, 100.0),
        "keda-qps": make_result("keda-qps", 10.0, 100.0),
        "oracle": make_result("oracle", 0.0, 100.0 / 1.15),
    }
    goals = by_goal(scenario_goals(scn, results))
    assert set(goals) == {
        "read viol <= 0.3 x keda-qps",
        "replica-h <= keda-qps",
        "replica-h <= 1.15 x oracle",
    }
    assert goals["read viol <= 0.3 x keda-qps"].met
    assert "(x0.30)" in goals["read viol <= 0.3 x keda-qps"].measured
    assert goals["replica-h <= keda-qps"].met
    assert goals["replica-h <= 1.15 x oracle"].met
    results["rwscaler"] = make_result("rwscaler", 3.1, 101.0)
    goals = by_goal(scenario_goals(scn, results))
    assert not goals["read viol <= 0.3 x keda-qps"].met
    assert not goals["replica-h <= keda-qps"].met
    assert not goals["replica-h <= 1.15 x oracle"].met


def test_unpredictable_goals() -> None:
    scn = make_scenario("spike", "unpredictable")
    timeline = [entry(2, []), entry(3, ["WriteBottleneck"]), entry(3, ["WriteBottleneck"])]
    results = {
        "rwscaler": make_result("rwscaler", 5.0, 10.0, timeline),
        "keda-qps": make_result("keda-qps", 5.0, 9.0),
        "oracle": make_result("oracle", 0.0, 9.0),
    }
    goals = by_goal(scenario_goals(scn, results))
    assert set(goals) == {
        "read viol <= keda-qps", "zero stale reads", "no scale-up while write-bound", "replica-h <= 1.15 x oracle",
    }  # fmt: skip
    assert goals["read viol <= keda-qps"].met  # equal is enough on an unpredictable scenario
    assert goals["zero stale reads"].met
    assert not goals["no scale-up while write-bound"].met
    assert goals["no scale-up while write-bound"].measured == "1 scale-up(s)"


def test_an_outage_adds_no_scale_down_while_blind() -> None:
    scn = make_scenario("outage", "unpredictable", blind=True)
    timeline = [entry(4, []), entry(3, [], metrics=False), entry(3, [])]
    results = {
        "rwscaler": make_result("rwscaler", 0.0, 1.0, timeline),
        "keda-qps": make_result("keda-qps", 0.0, 1.0),
        "oracle": make_result("oracle", 0.0, 1.0),
    }
    goal = by_goal(scenario_goals(scn, results))["no scale-down while Prometheus is down"]
    assert not goal.met
    assert goal.measured == "1 scale-down(s)"


def test_without_keda_qps_the_comparison_says_why() -> None:
    scn = make_scenario("daily", "predictable")
    results = {"rwscaler": make_result("rwscaler", 0.0, 1.0), "oracle": make_result("oracle", 0.0, 1.0)}
    goal = by_goal(scenario_goals(scn, results))["compared with keda-qps"]
    assert not goal.met
    assert "targetReadQPSPerReplica" in goal.measured


def _trend_results(fired: list[tuple[float, str]]) -> dict[str, Result]:
    ours = make_result("rwscaler", 0.0, 1.0)
    ours.fired.extend(fired)
    return {
        "rwscaler": ours,
        "keda-qps": make_result("keda-qps", 0.0, 1.0),
        "oracle": make_result("oracle", 0.0, 1.0),
    }


def test_the_trend_goal_wants_the_expected_rule_only_and_not_before_the_shift() -> None:
    rows = tuple(Row(86400.0 * i, 1000.0, 10.0) for i in range(15))
    shift = Scenario("write-shift-2w", "test", rows, window=(11 * 86400.0, 14 * 86400.0), kind="predictable")
    line = "WriteRatioRising fires (and not the other)"
    assert by_goal(scenario_goals(shift, _trend_results([(12.5 * 86400, "WriteRatioRising")])))[line].met
    assert not by_goal(scenario_goals(shift, _trend_results([])))[line].met, "it must fire"
    early = [(5 * 86400.0, "WriteRatioRising"), (12.5 * 86400, "WriteRatioRising")]
    assert not by_goal(scenario_goals(shift, _trend_results(early)))[line].met, "not before the shift"
    both = [(12.5 * 86400, "WriteRatioRising"), (13 * 86400, "ReadRatioRising")]
    assert not by_goal(scenario_goals(shift, _trend_results(both)))[line].met, "not the other rule"


def test_a_stationary_cycle_fires_no_trend_rule() -> None:
    rows = tuple(Row(86400.0 * i, 1000.0, 10.0) for i in range(3))
    cycle = Scenario("daily-cycle-3d", "test", rows, kind="predictable")
    line = "no trend rule on a stationary cycle"
    assert by_goal(scenario_goals(cycle, _trend_results([])))[line].met
    assert not by_goal(scenario_goals(cycle, _trend_results([(86400.0, "ReadRatioRising")])))[line].met
