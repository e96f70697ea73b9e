"""Each condition under unknown, known-good and known-bad inputs, in every consistency mode.

Expectations are docs/operator.md "Conditions", written here as literals: a condition is True or
False only when the signals behind it are known, Unknown (with the reason) otherwise, and its
message is at most 200 characters.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.builders import READ_OBJECTIVE, WRITE_OBJECTIVE, make_obs, no_stabilization

from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Signal, UnknownReason
from rwscaler.core.plan import Condition, Plan
from rwscaler.core.vocabulary import ConditionType as CT
from rwscaler.core.vocabulary import EffectiveMode, ReadyReason, Status
from rwscaler.report import ReadyOverride, render_status

MODES = ("eventual", "bounded", "strong")
MESSAGE_LIMIT = 200  # docs/operator.md: "at most 200 characters"

UNREACHABLE = Signal.unknown(UnknownReason.UNREACHABLE, "connect to 127.0.0.1:9090: connection refused")
NO_SERIES = Signal.unknown(UnknownReason.EMPTY, "no series")
SIGNALS_UNKNOWN = {
    "read_qps": UNREACHABLE,
    "write_qps": UNREACHABLE,
    "read_p99": UNREACHABLE,
    "write_p99": UNREACHABLE,
}


def levels(read: float, write: float) -> dict[str, float]:
    return {"read_p99": read * READ_OBJECTIVE, "write_p99": write * WRITE_OBJECTIVE}


def plan_in(mode: str, memory: Memory | None = None, **obs: Any) -> Plan:
    spec = no_stabilization(consistency=mode, replicas={"minReplicas": 0, "maxReplicas": 4})
    return decide(spec, make_obs(**obs), memory or Memory(), 0.0)


def seen(plan: Plan, kind: CT) -> tuple[Status, str]:
    c = plan.condition(kind)
    return (c.status, c.reason)


def assert_short(conditions: tuple[Condition, ...]) -> None:
    for c in conditions:
        assert len(c.message) <= MESSAGE_LIMIT, f"{c.type.value}: {len(c.message)} characters: {c.message}"


U, T, F = Status.UNKNOWN, Status.TRUE, Status.FALSE

# (row, observation, {condition: (status, reason)}): the rows of the docs' table, per input kind.
ROWS: list[tuple[str, dict[str, Any], dict[CT, tuple[Status, str]]]] = [
    (
        "signals unknown",
        {**SIGNALS_UNKNOWN, "lags": [UNREACHABLE, UNREACHABLE]},
        {
            CT.READY: (F, "MetricsUnavailable"),
            CT.METRICS_AVAILABLE: (F, "PrometheusUnreachable"),
            CT.READ_CAPACITY_EXHAUSTED: (U, "MetricsUnavailable"),
            CT.WRITE_BOTTLENECK: (U, "MetricsUnavailable"),
            CT.CAPACITY_LIMIT: (U, "MetricsUnavailable"),
            CT.REPLICATION_LAG_HIGH: (U, "LagUnknown"),
            CT.SCALING_LIMITED: (T, "MetricsUnknown"),
        },
    ),
    (
        "every lag unknown",
        {"lags": [UNREACHABLE, UNREACHABLE]},
        {
            CT.READY: (T, "Reconciled"),
            CT.METRICS_AVAILABLE: (T, "SignalsKnown"),
            CT.REPLICATION_LAG_HIGH: (U, "LagUnknown"),
        },
    ),
    (
        "one lag unknown, the other within",
        {"lags": [0.1, NO_SERIES]},
        {CT.REPLICATION_LAG_HIGH: (U, "LagUnknown")},
    ),
    (
        "all known and good",
        {**levels(0.5, 0.5), "lags": [0.1, 0.2]},
        {
            CT.READY: (T, "Reconciled"),
            CT.METRICS_AVAILABLE: (T, "SignalsKnown"),
            CT.READ_CAPACITY_EXHAUSTED: (F, "ReadCapacityAvailable"),
            CT.WRITE_BOTTLENECK: (F, "WritesWithinObjective"),
            CT.CAPACITY_LIMIT: (F, "NotBothSidesRising"),
            CT.REPLICATION_LAG_HIGH: (F, "LagWithinObjective"),
            CT.SCALING_LIMITED: (F, "DesiredWithinRange"),
        },
    ),
    ("no replicas", {"current": 0, "lags": []}, {CT.REPLICATION_LAG_HIGH: (F, "NoReplicas")}),
    (
        "reads breach",
        {**levels(2.0, 0.5)},
        {
            CT.READ_CAPACITY_EXHAUSTED: (T, "ReadLatencyRising"),
            CT.WRITE_BOTTLENECK: (F, "WritesWithinObjective"),
            CT.CAPACITY_LIMIT: (F, "NotBothSidesRising"),
        },
    ),
    (
        "writes breach",
        {**levels(0.5, 2.0)},
        {
            CT.READ_CAPACITY_EXHAUSTED: (F, "ReadCapacityAvailable"),
            CT.WRITE_BOTTLENECK: (T, "WriteLatencyRising"),
            CT.CAPACITY_LIMIT: (F, "NotBothSidesRising"),
        },
    ),
    ("both breach", {**levels(2.0, 2.0)}, {CT.CAPACITY_LIMIT: (T, "BothSidesRising")}),
    ("one replica lagging", {"lags": [9.0, 0.1]}, {CT.REPLICATION_LAG_HIGH: (T, "ReplicasLagging")}),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("row", "obs", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_each_condition_says_only_what_is_known(
    mode: str, row: str, obs: dict[str, Any], expected: dict[CT, tuple[Status, str]]
) -> None:
    plan = plan_in(mode, **obs)
    assert {kind: seen(plan, kind) for kind in expected} == expected
    assert_short(plan.conditions)


@pytest.mark.parametrize(
    "lags", [[9.0, 9.0], [9.0, UNREACHABLE]], ids=["both lagging", "one lagging, one unknown"]
)
@pytest.mark.parametrize("mode", MODES)
def test_no_replica_qualifying_with_one_lagging_is_reads_on_the_primary_except_under_strong(
    mode: str, lags: list[Any]
) -> None:
    """A lag known over the objective is True even when another is unknown. Under strong the
    primary serves reads by design: that is no fallback."""
    plan = plan_in(mode, lags=lags)
    reason = "ReplicasLagging" if mode == "strong" else "ReadsOnPrimary"
    assert seen(plan, CT.REPLICATION_LAG_HIGH) == (T, reason)


@pytest.mark.parametrize("mode", ("eventual", "bounded"))
def test_a_read_breach_at_max_replicas_is_limited(mode: str) -> None:
    plan = plan_in(mode, current=4, lags=[0.1] * 4, **levels(2.0, 0.5))
    assert seen(plan, CT.SCALING_LIMITED) == (T, "AtMaxReplicas")


@pytest.mark.parametrize("mode", MODES)
def test_a_prometheus_outage_after_a_known_tick_holds_the_pool_and_says_lag_unknown(mode: str) -> None:
    before = plan_in(mode, lags=[0.1, 0.1])
    plan = plan_in(mode, before.memory, **SIGNALS_UNKNOWN, lags=[UNREACHABLE, UNREACHABLE])
    status, reason = seen(plan, CT.REPLICATION_LAG_HIGH)
    assert (status, reason) == (U, "LagUnknown")
    message = plan.condition(CT.REPLICATION_LAG_HIGH).message
    assert "PrometheusUnreachable" in message
    if mode != "strong":  # strong routes reads to the primary whatever the lag
        assert "held" in message


@pytest.mark.parametrize("mode", MODES)
def test_messages_stay_short_with_many_replicas_and_long_reasons(mode: str) -> None:
    long = Signal.unknown(UnknownReason.QUERY_ERROR, "parse error: " + "x" * 400)
    many = [long] * 40
    plan = plan_in(mode, current=40, lags=many, read_qps=long, write_qps=long, read_p99=long, write_p99=long)
    assert_short(plan.conditions)
    lagging = plan_in(mode, current=40, lags=[99.0] * 40)
    assert_short(lagging.conditions)
    assert "and 37 more" in lagging.condition(CT.REPLICATION_LAG_HIGH).message


def test_a_long_ready_message_from_the_operator_is_cut_in_status() -> None:
    """An API error quoted in Ready is cut to the limit, ending in an ellipsis."""
    plan = plan_in("eventual")
    override = ReadyOverride(Status.FALSE, ReadyReason.ROUTING_FAILED, "the API said: " + "y" * 1000)
    status = render_status(
        plan,
        make_obs(),
        previous={},
        generation=1,
        now=0.0,
        mode=EffectiveMode.ENFORCE,
        ready_override=override,
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert len(ready["message"]) == MESSAGE_LIMIT and ready["message"].endswith("\u2026")
    assert all(len(c["message"]) <= MESSAGE_LIMIT for c in status["conditions"])
