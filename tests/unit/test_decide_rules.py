"""DESIGN.md's rebalancing rules, one table per row, through `decide`; the consistency modes; unknown
metrics; Recommend mode; and that every plan names its rules in readable words.

Thresholds come from docs/decisions.md ("Rising and stable"), written here as literals and never
imported from the code they pin: a latency side is RISING when p99 is over objective x
(1 + tolerance) (breached) or at least 0.8 x objective (approaching) and climbing, the fast average
above the slow one by more than the tolerance; reads under 0.8 x objective cannot be rising.
Objectives here are the defaults (read 50 ms, write 20 ms).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.builders import (
    READ_OBJECTIVE,
    WRITE_OBJECTIVE,
    assert_readable,
    cond,
    is_true,
    make_obs,
    make_spec,
    no_stabilization,
    rec_types,
    replica,
    rules,
    run_ticks,
    scaled_down,
    scaled_up,
)

from rwscaler.core.decide import decide
from rwscaler.core.memory import Ewma, Memory
from rwscaler.core.observation import History, RatioHistory, Signal, UnknownReason
from rwscaler.core.plan import Plan
from rwscaler.core.sizing import recommend_replicas
from rwscaler.core.trends import SideState, Trend
from rwscaler.core.vocabulary import ConditionType as CT
from rwscaler.core.vocabulary import RecommendationType, Rule, Status
from rwscaler.core.vocabulary import RecommendationType as RT

APPROACH = 0.8  # docs/decisions.md: "approaching (level >= 0.8)"
BREACH = 2.0  # p99 at twice the objective: clearly rising
CALM = 0.6  # under APPROACH (0.8) and over the headroom level (0.5): stable, no scale-down either


def plan_for(spec_overrides: dict[str, Any] | None = None, **obs: Any) -> Plan:
    spec = no_stabilization(**(spec_overrides or {}))
    return decide(spec, make_obs(**obs), Memory(), 0.0)


def levels(read: float, write: float) -> dict[str, Any]:
    return {"read_p99": read * READ_OBJECTIVE, "write_p99": write * WRITE_OBJECTIVE}


# --- row 1: read latency rising, writes stable -> read capacity exhausted, add read replicas -----


@pytest.mark.parametrize(
    ("current", "read_level", "expected"),
    [
        # LatencyStep: current + max(1, ceil(current x (level - 1)))
        (2, 1.11, 3),  # just over the tolerance band: the minimum step of 1
        (4, 1.2, 5),  # ceil(0.8) = 1
        (4, 1.4, 6),  # ceil(1.6) = 2
        (5, 1.3, 7),  # ceil(1.5) = 2
        (3, 2.0, 6),  # ceil(3.0) = 3
        (1, 4.0, 4),  # ceil(3.0) = 3
    ],
)
def test_read_rising_writes_stable_scales_up(current: int, read_level: float, expected: int) -> None:
    plan = plan_for(
        {"replicas": {"maxReplicas": 20}}, current=current, **levels(read_level, 0.5), read_qps=5000.0
    )
    assert plan.scale_to == expected
    assert plan.desired_replicas == expected
    assert is_true(plan, CT.READ_CAPACITY_EXHAUSTED)
    assert cond(plan, CT.READ_CAPACITY_EXHAUSTED).reason == "ReadLatencyRising"
    assert not is_true(plan, CT.WRITE_BOTTLENECK)
    assert not is_true(plan, CT.CAPACITY_LIMIT)
    add = next(r for r in plan.recommendations if r.type is RT.ADD_READ_REPLICAS)
    assert add.replicas == expected
    assert {Rule.READ_CAPACITY_EXHAUSTED, Rule.LATENCY_STEP, Rule.SCALE} <= rules(plan)


@pytest.mark.parametrize("read_level", [1.0, 1.05, 1.1])
def test_read_within_tolerance_band_does_not_scale(read_level: float) -> None:
    """p99 up to objective x (1 + tolerance) is not a breach: nothing is added."""
    plan = plan_for(current=2, **levels(read_level, 0.5))
    assert plan.scale_to is None
    assert plan.desired_replicas == 2
    assert RT.ADD_READ_REPLICAS not in rec_types(plan)
    assert Rule.LATENCY_STEP not in rules(plan)


def test_tolerance_band_is_the_specs() -> None:
    """The same p99 (1.2x) breaches with tolerance 0.1 and does not with tolerance 0.25."""
    obs = levels(1.2, 0.5)
    assert scaled_up(plan_for({"behavior": {"tolerance": 0.1}}, current=2, **obs))
    assert not scaled_up(plan_for({"behavior": {"tolerance": 0.25}}, current=2, **obs))


def test_read_climbing_toward_the_objective_is_rising_but_not_yet_a_step() -> None:
    """Approaching (>= 0.8x) and climbing is RISING: the condition says so before any breach."""
    spec = make_spec()
    read_levels = [0.5, 0.5, 0.5, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    ticks = run_ticks(spec, [make_obs(**levels(x, 0.5)) for x in read_levels], step=15)
    plan = ticks[-1].plan
    assert is_true(plan, CT.READ_CAPACITY_EXHAUSTED)
    assert plan.scale_to is None, "latency steps act on a breach only"
    # The same level without the climb is stable.
    flat = run_ticks(spec, [make_obs(**levels(0.95, 0.5))] * 9, step=15)[-1].plan
    assert not is_true(flat, CT.READ_CAPACITY_EXHAUSTED)


# --- "rising": the approach level and the climbing tolerance, at their boundaries ----------------
# docs/decisions.md: rising is breached, or approaching (level >= 0.8) and climbing: the fast
# average above the slow one by more than the tolerance (fast > slow x (1 + tolerance)). The
# averages are given in memory, with the tick at their own time (dt = 0 leaves them as they are),
# and the objectives are 1 s so that a level is exactly its p99 in seconds.

ONE_SECOND = {"objectives": {"readLatencyP99": "1s", "writeLatencyP99": "1s"}}
SIDE_CONDITION = {"read": CT.READ_CAPACITY_EXHAUSTED, "write": CT.WRITE_BOTTLENECK}


def side_plan(side: str, level: float, fast: float, slow: float, tolerance: float = 0.1) -> Plan:
    """One tick with `side` at p99 = `level` s (objective 1 s), its averages at `fast` and `slow`;
    the other side calm (0.5) with no history."""
    spec = no_stabilization(**ONE_SECOND, behavior={"tolerance": tolerance})
    history = Ewma(fast=fast, slow=slow, since=0.0)
    memory = Memory(ewma_time=100.0, **{f"{side}_latency": history})
    p99 = {"read_p99": 0.5, "write_p99": 0.5, f"{side}_p99": level}
    return decide(spec, make_obs(current=2, **p99), memory, 100.0)


@pytest.mark.parametrize("side", ["read", "write"])
@pytest.mark.parametrize("tolerance", [0.1, 0.25])
@pytest.mark.parametrize(
    ("where", "rising"),
    [
        ("inside", False),  # above the slow average, by less than the tolerance
        ("just-under", False),
        ("at", False),  # "more than the tolerance": exactly at it is not climbing
        ("just-over", True),
        ("well-over", True),
    ],
)
def test_climbing_is_more_than_the_tolerance_above_the_slow_average(
    side: str, tolerance: float, where: str, rising: bool
) -> None:
    slow = 0.5
    edge = slow * (1.0 + tolerance)
    fast = {
        "inside": slow * (1.0 + tolerance / 2),
        "just-under": math.nextafter(edge, 0.0),
        "at": edge,
        "just-over": math.nextafter(edge, math.inf),
        "well-over": slow * (1.0 + 2 * tolerance),
    }[where]
    plan = side_plan(side, 0.9, fast, slow, tolerance)  # approaching (0.9 >= 0.8), not breached
    assert is_true(plan, SIDE_CONDITION[side]) is rising
    assert not scaled_up(plan), "approaching and climbing is not a breach: no latency step"


@pytest.mark.parametrize("side", ["read", "write"])
@pytest.mark.parametrize(
    ("level", "rising"),
    [
        (math.nextafter(APPROACH, 0.0), False),
        (0.79, False),
        (APPROACH, True),  # "level >= 0.8"
        (math.nextafter(APPROACH, 1.0), True),
        (0.81, True),
    ],
)
def test_approaching_starts_at_0_8_of_the_objective(side: str, level: float, rising: bool) -> None:
    # Climbing clearly (the fast average twice the slow one): only the level decides.
    plan = side_plan(side, level, fast=1.0, slow=0.5)
    assert is_true(plan, SIDE_CONDITION[side]) is rising


@pytest.mark.parametrize("side", ["read", "write"])
def test_a_level_far_under_the_approach_is_stable_however_fast_it_climbs(side: str) -> None:
    plan = side_plan(side, 0.5, fast=10.0, slow=0.01)
    assert not is_true(plan, SIDE_CONDITION[side])


@pytest.mark.parametrize(
    ("tolerance", "level", "breached"),
    [
        (0.1, 1.1, False),  # "level > 1 + tolerance": at 1.1 not yet
        (0.1, math.nextafter(1.1, 2.0), True),
        (0.25, 1.25, False),
        (0.25, 1.2500001, True),
    ],
)
def test_breach_is_over_one_plus_the_tolerance(tolerance: float, level: float, breached: bool) -> None:
    # No history: a breach alone makes the read side rising, and a breach is what adds a replica.
    spec = no_stabilization(**ONE_SECOND, behavior={"tolerance": tolerance})
    plan = decide(spec, make_obs(current=2, read_p99=level, write_p99=0.5), Memory(), 0.0)
    assert is_true(plan, CT.READ_CAPACITY_EXHAUSTED) is breached
    assert scaled_up(plan) is breached


# --- row 2: write latency rising, reads stable -> write bottleneck, never add replicas ----------


@pytest.mark.parametrize("read_level", [0.1, CALM, APPROACH - 0.01])
@pytest.mark.parametrize("write_level", [1.11, 2.5, 10.0])
@pytest.mark.parametrize(("target", "asks_for"), [(100.0, 10), (200.0, 5), (400.0, 3)])
def test_write_rising_reads_stable_never_scales_up(
    read_level: float, write_level: float, target: float, asks_for: int
) -> None:
    """Read pressure on purpose: 1000 reads/s at `target` per replica asks for `asks_for` replicas
    (over the 2 running, beyond the tolerance band), so only the write-bound refusal keeps them out.

    There is no case without a capacity model here: without one, only a read latency breach adds
    replicas, and a read breach is the read side rising (both sides rising, row 3), so a write-bound
    tick without targetReadQPSPerReplica has nothing the refusal could stop."""
    spec = {"replicas": {"targetReadQPSPerReplica": target, "maxReplicas": 30}}
    obs = {"current": 2, "read_qps": 1000.0}
    plan = plan_for(spec, **obs, **levels(read_level, write_level))
    assert not scaled_up(plan)
    assert plan.desired_replicas <= 2
    assert is_true(plan, CT.WRITE_BOTTLENECK)
    assert cond(plan, CT.WRITE_BOTTLENECK).reason == "WriteLatencyRising"
    assert not is_true(plan, CT.READ_CAPACITY_EXHAUSTED)
    assert not is_true(plan, CT.CAPACITY_LIMIT)
    assert {RT.VERTICAL_SCALE_PRIMARY, RT.SHARD_WRITES} <= rec_types(plan)
    assert RT.ADD_READ_REPLICAS not in rec_types(plan)
    assert Rule.WRITE_BOTTLENECK in rules(plan)
    assert cond(plan, CT.SCALING_LIMITED).reason == "WriteBottleneck"
    # The read pressure is real: the same tick with writes calm scales up to what the model asks.
    calm = plan_for(spec, **obs, **levels(read_level, 0.5))
    assert calm.scale_to == asks_for


def test_write_bottleneck_refusal_is_reported_as_scaling_limited() -> None:
    """When reads alone would add replicas, the refusal is visible (ScalingLimited, WriteBottleneck)."""
    plan = plan_for(
        {"replicas": {"targetReadQPSPerReplica": 100.0}}, current=2, read_qps=1000.0, **levels(CALM, 3.0)
    )
    assert plan.desired_replicas == 2
    limited = cond(plan, CT.SCALING_LIMITED)
    assert limited.status is Status.TRUE
    assert limited.reason == "WriteBottleneck"
    assert limited.message == "desired 2 (min 1, max 8); limited by WriteBottleneck"


def write_climb_world(read_qps_under_pressure: float, write_climbs: bool = True) -> Any:
    """Writes climb from 0.5x to 4x their objective (write QPS with them); reads stay calm at 0.6x
    their objective, and their QPS jumps from 800/s to `read_qps_under_pressure` once the write p99
    is breached (over 1.2x), so every tick with read pressure is a write-bound tick."""

    def world(t: float, current: int) -> Any:
        write = min(0.5 + t / 300.0, 4.0) if write_climbs else 0.5
        pressure = min(0.5 + t / 300.0, 4.0) > 1.2
        return make_obs(
            current=current,
            read_qps=read_qps_under_pressure if pressure else 800.0,
            write_qps=100.0 + t,
            **levels(CALM, write),
        )

    return world


def test_write_surge_over_many_ticks_never_adds_a_replica() -> None:
    # 400/s per replica: 800 reads/s fit the 2 replicas; 3200/s would need 8.
    spec = make_spec(replicas={"targetReadQPSPerReplica": 400.0})
    ticks = run_ticks(spec, write_climb_world(3200.0), ticks=80, current=2)
    assert all(not scaled_up(t.plan) for t in ticks)
    assert is_true(ticks[-1].plan, CT.WRITE_BOTTLENECK)
    pressed = [t.plan for t in ticks if t.t > 210]  # write p99 over 1.2x from t = 210 s
    assert pressed and all(cond(p, CT.SCALING_LIMITED).reason == "WriteBottleneck" for p in pressed)
    # The same reads with writes calm: the capacity model adds replicas.
    control = run_ticks(spec, write_climb_world(3200.0, write_climbs=False), ticks=80, current=2)
    assert any(scaled_up(t.plan) for t in control)


def surge_world(write_factor: float, read_factor: float, read_level: float, write_level: float = 0.5) -> Any:
    """Steady traffic for 10 minutes, then writes (and reads) multiplied at t=600."""

    def world(t: float, current: int) -> Any:
        after = t >= 600
        return make_obs(
            current=current,
            read_qps=1000.0 * (read_factor if after else 1.0),
            write_qps=100.0 * (write_factor if after else 1.0),
            **levels(read_level if after else CALM, write_level),
        )

    return world


def test_write_traffic_surge_is_the_write_side_rising() -> None:
    """Write QPS surging (and outgrowing reads) is the write side rising before its latency breaches."""
    ticks = run_ticks(make_spec(), surge_world(4.0, 1.0, CALM), ticks=44)
    during = [t.plan for t in ticks if 630 <= t.t <= 645]
    assert during and all(is_true(p, CT.WRITE_BOTTLENECK) for p in during)
    # The latency is calm: the message names the surge, or True would read as a contradiction.
    assert all("(a write surge)" in cond(p, CT.WRITE_BOTTLENECK).message for p in during)
    assert all({RT.VERTICAL_SCALE_PRIMARY, RT.SHARD_WRITES} <= rec_types(p) for p in during)
    assert not any(is_true(t.plan, CT.WRITE_BOTTLENECK) for t in ticks if t.t < 600)


def test_read_breach_during_a_write_surge_adds_no_replica() -> None:
    """Replay work from a write surge slows reads; replicas would only add replay load."""
    surge = run_ticks(make_spec(), surge_world(4.0, 1.0, BREACH), ticks=44)
    assert not any(scaled_up(t.plan) for t in surge)
    assert any(is_true(t.plan, CT.CAPACITY_LIMIT) for t in surge if t.t >= 600)
    # The same read breach without the write surge is a read-capacity problem.
    no_surge = run_ticks(make_spec(), surge_world(1.0, 1.0, BREACH), ticks=44)
    assert any(scaled_up(t.plan) for t in no_surge)


def test_traffic_growing_on_both_sides_alike_is_not_a_write_surge() -> None:
    ticks = run_ticks(make_spec(), surge_world(4.0, 4.0, BREACH), ticks=44)
    after = [t.plan for t in ticks if t.t >= 600]
    assert not any(is_true(p, CT.WRITE_BOTTLENECK) or is_true(p, CT.CAPACITY_LIMIT) for p in after)
    assert any(scaled_up(p) for p in after)


def test_no_scale_down_while_reads_are_rising() -> None:
    """The capacity model asks for 1 replica, but read p99 is climbing toward its objective."""
    spec = no_stabilization(replicas={"targetReadQPSPerReplica": 1000.0})
    climbing = [0.5, 0.5, 0.5, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    ticks = run_ticks(spec, [make_obs(current=4, read_qps=100.0, **levels(x, 0.5)) for x in climbing])
    assert is_true(ticks[-1].plan, CT.READ_CAPACITY_EXHAUSTED)
    assert ticks[-1].plan.desired_replicas == 4
    flat = decide(spec, make_obs(current=4, read_qps=100.0, **levels(CALM, 0.5)), Memory(), 0.0)
    assert flat.desired_replicas == 1


# --- row 3: both rising -> capacity limit, architecture review; replicas only if capacity says ---


def test_both_rising_without_capacity_model_adds_nothing() -> None:
    plan = plan_for(current=2, **levels(BREACH, BREACH))
    assert not scaled_up(plan)
    assert is_true(plan, CT.CAPACITY_LIMIT)
    assert cond(plan, CT.CAPACITY_LIMIT).reason == "BothSidesRising"
    assert not is_true(plan, CT.WRITE_BOTTLENECK)
    assert RT.ARCHITECTURE_REVIEW in rec_types(plan)
    assert RT.ADD_READ_REPLICAS not in rec_types(plan)
    assert Rule.CAPACITY_LIMIT in rules(plan)


def test_both_rising_adds_what_the_capacity_model_alone_justifies() -> None:
    # 500 reads/s at 100/s per replica needs 5; the latency step (3x) alone would ask for 2 + 4 = 6.
    plan = plan_for(
        {"replicas": {"targetReadQPSPerReplica": 100.0}}, current=2, read_qps=500.0, **levels(3.0, BREACH)
    )
    assert plan.scale_to == 5
    assert is_true(plan, CT.CAPACITY_LIMIT)
    assert RT.ARCHITECTURE_REVIEW in rec_types(plan)
    add = next(r for r in plan.recommendations if r.type is RT.ADD_READ_REPLICAS)
    assert add.replicas == 5


def test_both_rising_when_capacity_model_is_satisfied_adds_nothing() -> None:
    # 150 reads/s at 100/s per replica needs 2: the current count; latency alone does not count.
    plan = plan_for(
        {"replicas": {"targetReadQPSPerReplica": 100.0}}, current=2, read_qps=150.0, **levels(3.0, BREACH)
    )
    assert not scaled_up(plan)
    assert is_true(plan, CT.CAPACITY_LIMIT)


@settings(max_examples=300, deadline=None)
@given(
    read_level=st.one_of(st.sampled_from([0.8, 0.9, 1.0, 1.11, 2.0, 4.0]), st.floats(0.8, 5.0)),
    write_level=st.one_of(st.sampled_from([0.8, 1.11, 3.0]), st.floats(0.8, 5.0)),
    target=st.sampled_from([None, 50.0, 200.0, 1000.0]),
    read_qps=st.one_of(st.sampled_from([0.0, 100.0, 1000.0, 5000.0]), st.floats(0.0, 10_000.0)),
    current=st.integers(0, 6),
    not_ready=st.integers(0, 2),
    lagging=st.integers(0, 2),
    lag_bound=st.booleans(),
    consistency=st.sampled_from(["eventual", "bounded"]),
    climb=st.sampled_from([0.0, 50.0]),
    settled=st.booleans(),
)
def test_both_rising_adds_only_what_the_capacity_model_asks_for(
    read_level: float,
    write_level: float,
    target: float | None,
    read_qps: float,
    current: int,
    not_ready: int,
    lagging: int,
    lag_bound: bool,
    consistency: str,
    climb: float,
    settled: bool,
) -> None:
    """Row 3 at the level of sizing.py: with both sides rising, the raw count goes above the current
    one only when the capacity model alone asks for more.

    A `CapacityLimit` refusal in recommend_replicas (raw above current while both rise and the
    capacity model asks for no more than current) could never fire: the latency step, the only
    other source of a scale-up, needs the write side stable. It was removed (issue 10, item 9);
    this property is what holds both rising."""
    spec = no_stabilization(consistency=consistency, replicas={"targetReadQPSPerReplica": target})
    obs = make_obs(
        current=current,
        read_qps=read_qps,
        replicas=[replica(i, ready=i >= not_ready) for i in range(current)],
    )
    memory = Memory(read_qps=Ewma(fast=read_qps + climb * 240, slow=read_qps, since=0))
    read = SideState(Trend.RISING, breached=read_level > 1.1, level=read_level)
    write = SideState(Trend.RISING, breached=write_level > 1.1, level=write_level)
    advice = recommend_replicas(
        spec,
        obs,
        memory,
        read,
        write,
        lag_bound,
        current,
        min(lagging, current),
        starting=min(not_ready, current),
        settled=settled,
        now=0.0,
        climb=climb,
    )
    if advice.raw > current:
        assert advice.capacity_raw is not None and advice.capacity_raw > current
        assert advice.raw <= advice.capacity_raw


def cqrs_stance(message: str) -> str:
    if "not advised" in message:
        return "against"
    if "worth" in message:
        return "advised"
    return "neutral"


@pytest.mark.parametrize(
    ("reads", "writes", "stance"),
    [
        (10_000.0, 10.0, "advised"),  # 1000:1
        (510.0, 10.0, "advised"),  # 51:1
        (500.0, 10.0, "neutral"),  # exactly 50:1 is not above 50
        (300.0, 10.0, "neutral"),  # 30:1
        (100.0, 10.0, "neutral"),  # exactly 10:1 is not below 10
        (99.0, 10.0, "against"),  # 9.9:1
        (10.0, 10.0, "against"),  # 1:1
        (1.0, 100.0, "against"),  # 1:100
    ],
)
def test_architecture_review_advises_cqrs_only_above_50_and_against_below_10(
    reads: float, writes: float, stance: str
) -> None:
    plan = plan_for(current=2, read_qps=reads, write_qps=writes, **levels(BREACH, BREACH))
    review = next(r for r in plan.recommendations if r.type is RT.ARCHITECTURE_REVIEW)
    assert "CQRS" in review.message
    assert cqrs_stance(review.message) == stance, review.message
    assert_readable(review.message)


# --- rows 4 and 5: the read:write ratio moving over a trend window -------------------------------
# docs/decisions.md "Trend rules": judged from Prometheus's history (one ratio per period over the
# trend window), not from one tick's signals.


def with_ratios(points: tuple[float | None, ...], **obs: Any) -> Any:
    history = History(ratios=RatioHistory(period_s=7 * 86400.0, points=points, shift_s=3 * 86400.0))
    return dataclasses.replace(make_obs(**obs), history=history)


SEED_DRIFT = tuple(100.0 * (30.0 / 100.0) ** (i / 11) for i in range(12))  # 100:1 -> 30:1 in 12 weeks


def test_read_ratio_rising_recommends_pre_provisioning() -> None:
    plan = decide(make_spec(), with_ratios(SEED_DRIFT[::-1], current=2, read_qps=1000.0), Memory(), 1000.0)
    assert RT.PRE_PROVISION_REPLICAS in rec_types(plan)
    assert Rule.READ_RATIO_RISING in rules(plan)
    assert RT.WRITE_OPTIMIZED_STORAGE not in rec_types(plan)
    assert plan.ratio_trend is not None and plan.ratio_trend.direction == 1


def test_write_ratio_rising_recommends_write_optimized_storage() -> None:
    plan = decide(make_spec(), with_ratios(SEED_DRIFT, current=2, read_qps=1000.0), Memory(), 1000.0)
    assert RT.WRITE_OPTIMIZED_STORAGE in rec_types(plan)
    reason = next(r for r in plan.reasons if r.rule is Rule.WRITE_RATIO_RISING)
    assert "from 100:1 to 30:1 over 11 weeks" in reason.message
    assert RT.PRE_PROVISION_REPLICAS not in rec_types(plan)
    assert not scaled_up(plan), "a trend in the write share adds no replica"


def test_steady_ratio_or_no_history_recommends_neither() -> None:
    for points in ((50.0,) * 12, (), (None,) * 12):
        plan = decide(make_spec(), with_ratios(points, current=2, read_qps=1000.0), Memory(), 1000.0)
        assert not {RT.PRE_PROVISION_REPLICAS, RT.WRITE_OPTIMIZED_STORAGE} & rec_types(plan)
        assert not {Rule.READ_RATIO_RISING, Rule.WRITE_RATIO_RISING} & rules(plan)


def test_pre_provisioning_names_the_forecast_replicas_with_a_capacity_model() -> None:
    spec = make_spec(replicas={"targetReadQPSPerReplica": 1000.0})
    plan = decide(spec, with_ratios(SEED_DRIFT[::-1], current=2, read_qps=4500.0), Memory(), 1000.0)
    pre = next(r for r in plan.recommendations if r.type is RT.PRE_PROVISION_REPLICAS)
    assert pre.replicas == 5  # ceil(4500 / 1000)


# --- consistency modes ---------------------------------------------------------------------------


def test_eventual_scales_up_even_while_replicas_lag() -> None:
    plan = plan_for({"consistency": "eventual"}, current=2, lags=[9.0, 8.0], **levels(BREACH, 0.5))
    assert scaled_up(plan)


def test_bounded_refuses_scale_up_while_lag_is_the_bottleneck() -> None:
    plan = plan_for({"consistency": "bounded"}, current=2, lags=[9.0, 8.0], **levels(BREACH, 0.5))
    assert not scaled_up(plan)
    assert Rule.LAG_BOUND in rules(plan)
    assert "LagBound" in cond(plan, CT.SCALING_LIMITED).message
    assert is_true(plan, CT.REPLICATION_LAG_HIGH)


def test_bounded_refuses_capacity_model_scale_up_too_while_lag_bound() -> None:
    plan = plan_for(
        {"consistency": "bounded", "replicas": {"targetReadQPSPerReplica": 100.0}},
        current=3,
        read_qps=1000.0,
        lags=[9.0, 8.0, 0.1],
    )
    assert not scaled_up(plan)
    assert Rule.LAG_BOUND in rules(plan)


def test_bounded_scales_up_when_lag_is_not_the_bottleneck() -> None:
    # One lagging replica out of three is not the bottleneck (a majority lagging is).
    plan = plan_for({"consistency": "bounded"}, current=3, lags=[9.0, 0.1, 0.2], **levels(BREACH, 0.5))
    assert scaled_up(plan)
    assert Rule.LAG_BOUND not in rules(plan)


@pytest.mark.parametrize(
    ("lags", "lag_bound"),
    [
        # docs/decisions.md: lag is the bottleneck with MORE than half the replicas over the lag
        # objective (5 s); a replica at exactly 5 s is not over it.
        ([9.0, 0.1, 0.1, 0.1], False),  # 1 of 4: under half
        ([9.0, 9.0, 0.1, 0.1], False),  # 2 of 4: exactly half is not more than half
        ([9.0, 9.0, 9.0, 0.1], True),  # 3 of 4: just over half
        ([5.0, 5.0, 5.0, 0.1], False),  # at the objective is not over it
        ([5.001, 5.001, 5.001, 0.1], True),
        ([9.0, 0.1, 0.1], False),  # 1 of 3
        ([9.0, 9.0, 0.1], True),  # 2 of 3
    ],
)
def test_bounded_lag_bound_is_more_than_half_the_replicas_lagging(lags: list[float], lag_bound: bool) -> None:
    plan = plan_for(
        {"consistency": "bounded", "replicas": {"maxReplicas": 20}},
        current=len(lags),
        lags=lags,
        **levels(BREACH, 0.5),
    )
    assert scaled_up(plan) is not lag_bound
    assert (Rule.LAG_BOUND in rules(plan)) is lag_bound
    assert (cond(plan, CT.SCALING_LIMITED).reason == "LagBound") is lag_bound
    # The same lags under eventual never refuse.
    eventual = plan_for(
        {"replicas": {"maxReplicas": 20}}, current=len(lags), lags=lags, **levels(BREACH, 0.5)
    )
    assert scaled_up(eventual)


@pytest.mark.parametrize("target", [None, 100.0])
def test_strong_never_adds_replicas_for_reads(target: float | None) -> None:
    plan = plan_for(
        {"consistency": "strong", "replicas": {"targetReadQPSPerReplica": target}},
        current=2,
        read_qps=5000.0,
        replicas=[replica(0, 0.0, synchronous=True), replica(1, 0.3)],
        **levels(3.0, 0.5),
    )
    assert not scaled_up(plan)
    assert plan.desired_replicas == 2
    assert Rule.STRONG_CONSISTENCY in rules(plan)
    assert RT.ADD_READ_REPLICAS not in rec_types(plan)
    assert RT.VERTICAL_SCALE_PRIMARY in rec_types(plan), (
        "a read breach under strong asks for a bigger primary"
    )


def test_strong_pool_is_primary_and_synchronous_caught_up_replicas() -> None:
    plan = plan_for(
        {"consistency": "strong"},
        current=4,
        replicas=[
            replica(0, 0.0, synchronous=True),
            replica(1, 0.0),  # asynchronous at lag 0: not enough
            replica(2, 0.2, synchronous=True),  # synchronous but behind
            replica(3, 0.0, synchronous=True, ready=False),
        ],
    )
    assert plan.read_pool == ("db-0", "db-replica-0")
    assert not plan.pool_fallback


def test_strong_with_no_synchronous_replica_serves_from_the_primary() -> None:
    plan = plan_for({"consistency": "strong"}, current=2, lags=[0.0, 0.0])
    assert plan.read_pool == ("db-0",)
    assert not plan.pool_fallback, "primary-only is the design under strong, not a fallback"


# --- unknown metrics: hold, never scale down, MetricsAvailable=False naming the signal ------------

SIGNALS = {
    "readQPS": "read_qps",
    "writeQPS": "write_qps",
    "readLatencyP99": "read_p99",
    "writeLatencyP99": "write_p99",
}
UNKNOWNS = [
    pytest.param(None, "EmptyResult", id="missing"),
    pytest.param(Signal(float("nan")), "NotANumber", id="nan"),
    pytest.param(Signal(float("inf")), "NotANumber", id="inf"),
    pytest.param(Signal.unknown(UnknownReason.STALE, "sample 3m old"), "StaleSample", id="stale"),
    pytest.param(Signal.unknown(UnknownReason.UNREACHABLE), "PrometheusUnreachable", id="unreachable"),
]


@pytest.mark.parametrize("signal_name", list(SIGNALS))
@pytest.mark.parametrize(("value", "reason"), UNKNOWNS)
def test_unknown_signal_holds_and_reports(signal_name: str, value: Any, reason: str) -> None:
    # Every other signal says "remove a replica" (reads far under the objective, few reads).
    obs = {"read_qps": 10.0, "write_qps": 10.0, **levels(0.1, 0.1), SIGNALS[signal_name]: value}
    plan = plan_for({"replicas": {"targetReadQPSPerReplica": 100.0}}, current=4, **obs)
    assert plan.scale_to is None
    assert plan.desired_replicas == 4
    available = cond(plan, CT.METRICS_AVAILABLE)
    assert available.status is Status.FALSE
    assert available.reason == reason
    assert signal_name in available.message
    assert cond(plan, CT.READY).status is Status.FALSE
    for kind in (CT.READ_CAPACITY_EXHAUSTED, CT.WRITE_BOTTLENECK, CT.CAPACITY_LIMIT):
        assert cond(plan, kind).status is Status.UNKNOWN
    assert Rule.METRICS_UNKNOWN in rules(plan)
    assert signal_name in next(r.message for r in plan.reasons if r.rule is Rule.METRICS_UNKNOWN)


def test_the_hold_on_unknown_metrics_in_words() -> None:
    """The MetricsUnknown reason word for word (status, events and `explain` show it), with each
    unknown signal's reason as input, and the hold reported as ScalingLimited."""
    stale = Signal.unknown(UnknownReason.STALE, "sample 3m old")
    plan = plan_for(current=4, read_qps=None, write_p99=stale)
    held = next(r for r in plan.reasons if r.rule is Rule.METRICS_UNKNOWN)
    assert (
        held.message
        == "holding at 4 replicas: readQPS, writeLatencyP99 unknown; never scaling on missing data"
    )
    assert held.inputs == (("readQPS", "EmptyResult"), ("writeLatencyP99", "StaleSample"))
    limited = cond(plan, CT.SCALING_LIMITED)
    assert limited.status is Status.TRUE
    assert limited.reason == "MetricsUnknown"
    assert limited.message == "desired 4 (min 1, max 8); limited by MetricsUnknown"


@pytest.mark.parametrize("unknown", ["read_qps", "write_p99"])
def test_the_hold_keeps_what_was_learned_and_records_no_recommendation(unknown: str) -> None:
    """A tick that holds on unknown metrics forgets nothing (the learned capacity) and adds nothing
    to the stabilization history."""
    spec = make_spec()  # scale-down window 300 s: the history is kept
    memory = Memory(
        last_tick=0.0, recommendations=((0.0, 3),), breach_qps_per_replica=123.0, breach_time=-50.0
    )
    plan = decide(spec, make_obs(current=3, **{unknown: None}), memory, 15.0)
    assert plan.memory.breach_qps_per_replica == 123.0
    assert plan.memory.breach_time == -50.0, "the learned capacity's clock is kept too"
    assert plan.memory.recommendations == ((0.0, 3),)
    assert plan.desired_replicas == 3 and plan.scale_to is None


def test_strong_consistency_keeps_what_was_learned() -> None:
    spec = no_stabilization(consistency="strong")
    memory = Memory(last_tick=0.0, breach_qps_per_replica=123.0, breach_time=-50.0)
    plan = decide(spec, make_obs(current=2, **levels(0.6, 0.5)), memory, 15.0)
    assert plan.memory.breach_qps_per_replica == 123.0
    assert plan.memory.breach_time == -50.0


def test_unknown_read_latency_does_not_scale_up_either() -> None:
    plan = plan_for(current=2, read_p99=None, write_p99=0.5 * WRITE_OBJECTIVE, read_qps=1e6)
    assert plan.scale_to is None and plan.desired_replicas == 2


def test_all_unknown_names_every_signal() -> None:
    plan = plan_for(current=3, read_qps=None, write_qps=None, read_p99=None, write_p99=None)
    message = cond(plan, CT.METRICS_AVAILABLE).message
    assert all(name in message for name in SIGNALS)
    assert plan.workload_class == "Unknown"
    assert plan.ratio is None


def test_outage_in_the_middle_of_a_scale_down_holds() -> None:
    """Reads far under the objective: the scale-down window (120 s) would let a replica go at
    t=120, but Prometheus is unreachable from t=60, so nothing goes."""
    spec = make_spec(behavior={"scaleDown": {"stabilizationWindowSeconds": 120, "maxStep": 1}})
    outage = Signal.unknown(UnknownReason.UNREACHABLE)

    def world(with_outage: bool) -> Any:
        def observe(t: float, current: int) -> Any:
            if with_outage and t >= 60:
                return make_obs(current=current, read_qps=outage, write_qps=outage, read_p99=outage)
            return make_obs(current=current, **levels(0.1, 0.5))

        return observe

    control = run_ticks(spec, world(False), ticks=30, current=5)
    assert any(scaled_down(t.plan) for t in control), "without the outage the replica goes"
    ticks = run_ticks(spec, world(True), ticks=30, current=5)
    assert not any(scaled_down(t.plan) for t in ticks)
    assert ticks[-1].plan.desired_replicas == 5


def test_metrics_recovering_turns_metrics_available_back_true() -> None:
    spec = make_spec()
    obs = [make_obs(read_qps=None), make_obs(read_qps=None), make_obs()]
    ticks = run_ticks(spec, obs)
    assert [cond(t.plan, CT.METRICS_AVAILABLE).status for t in ticks] == [
        Status.FALSE,
        Status.FALSE,
        Status.TRUE,
    ]


# --- Recommend mode: decide and report, act on nothing ------------------------------------------


@pytest.mark.parametrize(
    "obs",
    [
        pytest.param(levels(BREACH, 0.5), id="read-breach"),
        pytest.param(levels(0.1, 0.5), id="headroom"),
        pytest.param(levels(0.6, BREACH), id="write-bottleneck"),
        pytest.param(levels(BREACH, BREACH), id="both"),
    ],
)
def test_recommend_mode_reports_but_never_acts(obs: dict[str, float]) -> None:
    enforce = plan_for({"mode": "Enforce", "pooler": {"kind": "None"}}, current=3, **obs)
    recommend = plan_for({"mode": "Recommend", "pooler": {"kind": "None"}}, current=3, **obs)
    assert recommend.scale_to is None
    assert not recommend.enforce
    assert recommend.desired_replicas == enforce.desired_replicas
    assert recommend.true_conditions() == enforce.true_conditions()
    assert rec_types(recommend) == rec_types(enforce)
    assert recommend.draining == ()
    assert recommend.memory.last_scale_time is None
    assert cond(recommend, CT.READY).reason == "RecommendOnly"
    if enforce.scale_to is not None:
        assert Rule.RECOMMEND_ONLY in rules(recommend)
        assert "Recommend mode" in recommend.summary or "would scale" in recommend.summary


def test_recommend_mode_over_time_never_scales() -> None:
    spec = make_spec(mode="Recommend", replicas={"targetReadQPSPerReplica": 100.0, "maxReplicas": 30})
    ticks = run_ticks(
        spec, lambda t, c: make_obs(current=c, read_qps=2000.0, **levels(BREACH, 0.5)), ticks=20, current=2
    )
    assert all(t.plan.scale_to is None for t in ticks)
    assert all(t.current == 2 for t in ticks)
    add = next(r for r in ticks[-1].plan.recommendations if r.type is RecommendationType.ADD_READ_REPLICAS)
    assert "Recommend mode" in add.message


# --- every plan names its rules ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_overrides", "obs"),
    [
        pytest.param({}, levels(BREACH, 0.5), id="scale-up"),
        pytest.param({}, levels(0.1, 0.5), id="scale-down"),
        pytest.param({}, levels(CALM, BREACH), id="write-bound"),
        pytest.param({}, levels(BREACH, BREACH), id="both"),
        pytest.param({"replicas": {"minReplicas": 3}}, levels(CALM, 0.5), id="below-min"),
        pytest.param({"replicas": {"maxReplicas": 1}}, levels(CALM, 0.5), id="above-max"),
        pytest.param({}, {"read_qps": None}, id="unknown"),
        pytest.param({"pooler": {"kind": "EndpointSlice", "readService": "r"}}, levels(0.1, 0.5), id="drain"),
        pytest.param({}, {"lags": [9.0, 9.0]}, id="fallback"),
    ],
)
def test_a_plan_that_acts_names_its_rules_in_readable_words(
    spec_overrides: dict[str, Any], obs: dict[str, Any]
) -> None:
    plan = plan_for(spec_overrides, current=2, **obs)
    assert plan.reasons
    for reason in plan.reasons:
        assert_readable(reason.message)
    for c in plan.conditions:
        assert_readable(c.message)
    for r in plan.recommendations:
        assert_readable(r.message)
    assert_readable(plan.summary)
    if plan.scale_to is not None:
        assert Rule.SCALE in rules(plan)
        assert f"{plan.current_replicas} -> {plan.scale_to}" in plan.summary


def only_reason(plan: Plan, rule: Rule, containing: str = "") -> Any:
    found = [r for r in plan.reasons if r.rule is rule and containing in r.message]
    assert len(found) == 1, [r.message for r in plan.reasons]
    return found[0]


def test_the_capacity_model_and_the_forecast_in_words() -> None:
    """1000 reads/s climbing 1/s (averages 1240 and 1000: slope 240 / (300 - 60)), forecast 120 s
    ahead: 1120/s at 100/s per replica."""
    spec = no_stabilization(replicas={"targetReadQPSPerReplica": 100.0, "maxReplicas": 20})
    memory = Memory(ewma_time=100.0, read_qps=Ewma(fast=1240.0, slow=1000.0, since=0.0))
    plan = decide(spec, make_obs(current=2, read_qps=1000.0), memory, 100.0)
    model = only_reason(plan, Rule.CAPACITY_MODEL)
    assert model.message == (
        "1000 reads/s at 100/s per replica needs 10 replicas; forecast (the recent climb) 1120/s needs 12"
    )
    assert model.inputs == (
        ("readQPS", 1000.0),
        ("forecastQPS", 1120.0),
        ("basis", "trend"),
        ("target", 100.0),
        ("lagging", 0),
    )
    forecast = only_reason(plan, Rule.READ_FORECAST)
    assert forecast.message == "reads climbing 60/s per minute: provisioning for 1120/s 120s ahead"
    assert forecast.inputs == (("slopePerSecond", 1.0), ("forecastSeconds", 120.0), ("basis", "trend"))
    assert plan.scale_to == 12


@pytest.mark.parametrize(
    ("lags", "expected"),
    [
        # 4 replicas, 1,000 reads/s at 200/s per replica needs 5 (docs/decisions.md, capacity model)
        ([9.0, 0.1, 0.1, 0.1], 6),  # one lags: its capacity is replaced
        ([9.0, 9.0, 0.1, 0.1], 7),  # half lag: both replaced
        ([9.0, 9.0, 9.0, 0.1], 5),  # more than half: lag is the bottleneck, a new one would lag too
    ],
)
def test_lagging_replicas_are_replaced_unless_lag_is_the_bottleneck(lags: list[float], expected: int) -> None:
    spec = no_stabilization(replicas={"targetReadQPSPerReplica": 200.0, "maxReplicas": 20})
    plan = decide(spec, make_obs(current=4, read_qps=1000.0, lags=lags), Memory(), 0.0)
    assert plan.desired_replicas == expected


def test_lag_is_the_bottleneck_judged_among_the_replicas_whose_lag_is_known() -> None:
    """docs/decisions.md: more than half the replicas whose lag is known. Two ready replicas both
    lag while two asked for are still starting: lag is the bottleneck, so the lagging two are not
    replaced (their replacements would replay the same writes) and `bounded` adds nothing."""
    reps = [replica(0, 9.0), replica(1, 9.0), replica(2, None, ready=False), replica(3, None, ready=False)]
    spec = no_stabilization(replicas={"targetReadQPSPerReplica": 200.0, "maxReplicas": 20})
    # Two ticks: a replica leaves the pool for lag on the first, is "out for lag" on the second.
    first = decide(spec, make_obs(current=4, read_qps=1000.0, replicas=reps), Memory(), 0.0)
    plan = decide(spec, make_obs(current=4, read_qps=1000.0, replicas=reps), first.memory, 15.0)
    assert plan.desired_replicas == 5  # ceil(1000 / 200), nothing added for the lagging two
    bounded = no_stabilization(
        consistency="bounded", replicas={"targetReadQPSPerReplica": 200.0, "maxReplicas": 20}
    )
    held = decide(bounded, make_obs(current=4, read_qps=1000.0, replicas=reps), first.memory, 15.0)
    assert held.desired_replicas == 4
    assert Rule.LAG_BOUND in rules(held)


def test_replicas_out_of_the_pool_for_lag_in_words() -> None:
    spec = no_stabilization(replicas={"targetReadQPSPerReplica": 200.0, "maxReplicas": 20})
    plan = decide(spec, make_obs(current=3, read_qps=1000.0, lags=[9.0, 0.1, 0.1]), Memory(), 0.0)
    model = only_reason(plan, Rule.CAPACITY_MODEL)
    assert model.message == (
        "1000 reads/s at 200/s per replica needs 5 replicas; +1 for replicas out of the pool for lag"
    )
    assert model.inputs == (
        ("readQPS", 1000.0),
        ("forecastQPS", 1000.0),
        ("basis", "present"),
        ("target", 200.0),
        ("lagging", 1),
    )
    assert plan.scale_to == 6


def test_the_latency_step_in_words() -> None:
    plan = plan_for(current=2, **levels(BREACH, 0.5))
    step = only_reason(plan, Rule.LATENCY_STEP)
    assert step.message == "read p99 at 2.00x its objective with writes stable: at least 4 replicas"
    assert step.inputs == (("readLatencyRatio", 2.0), ("step", 2))
    waiting = plan_for(
        current=3, replicas=[replica(0), replica(1), replica(2, ready=False)], **levels(BREACH, 0.5)
    )
    wait = only_reason(waiting, Rule.LATENCY_STEP)
    assert wait.message == "read p99 at 2.00x its objective; waiting for 1 starting replica(s)"
    assert wait.inputs == (("readLatencyRatio", 2.0), ("pending", 1))


def test_the_latency_headroom_in_words() -> None:
    plan = plan_for(current=3, **levels(0.1, 0.5))
    assert (
        only_reason(plan, Rule.LATENCY_HEADROOM).message
        == "read p99 at 0.10x its objective: one replica fewer"
    )
    spec = no_stabilization()
    learned = decide(
        spec, make_obs(current=3, **levels(0.1, 0.5)), Memory(breach_qps_per_replica=2000.0), 0.0
    )
    headroom = only_reason(learned, Rule.LATENCY_HEADROOM)
    assert headroom.message == (
        "read p99 at 0.10x its objective: one replica fewer (learned capacity 2000/s per replica)"
    )
    assert dict(headroom.inputs)["learnedQPSPerReplica"] == 2000.0


def test_no_scale_down_while_reads_rise_in_words() -> None:
    spec = no_stabilization(**ONE_SECOND, replicas={"targetReadQPSPerReplica": 1000.0})
    memory = Memory(ewma_time=100.0, read_latency=Ewma(fast=1.0, slow=0.5, since=0.0))
    plan = decide(spec, make_obs(current=4, read_qps=100.0, read_p99=0.9, write_p99=0.5), memory, 100.0)
    assert plan.desired_replicas == 4
    kept = only_reason(plan, Rule.LATENCY_STEP)
    assert kept.message == "no scale-down while read p99 is rising (0.90x its objective)"
    assert kept.inputs == (("readLatencyRatio", 0.9),)


def test_the_lag_bound_in_words() -> None:
    plan = plan_for({"consistency": "bounded"}, current=2, lags=[9.0, 8.0], **levels(BREACH, 0.5))
    assert only_reason(plan, Rule.LAG_BOUND).message == (
        "consistency bounded: replication lag is the bottleneck, so no replica is added "
        "(a new replica would lag too)"
    )


def test_within_the_tolerance_band_names_its_inputs() -> None:
    # 380 reads/s on 4 x 100/s: usage 0.95, inside the band whichever side of 1 it is measured.
    spec = no_stabilization(replicas={"targetReadQPSPerReplica": 100.0})
    plan = decide(spec, make_obs(current=4, read_qps=380.0), Memory(), 0.0)
    within = only_reason(plan, Rule.WITHIN_TOLERANCE)
    assert within.inputs == (("readQPS", 380.0), ("forecastQPS", 380.0), ("target", 100.0))
    assert plan.desired_replicas == 4


def test_no_reads_need_no_replica_under_the_capacity_model() -> None:
    """0 reads/s at 100/s per replica needs 0 replicas: down to minReplicas 0 (the primary serves)."""
    plan = plan_for(
        {"replicas": {"targetReadQPSPerReplica": 100.0, "minReplicas": 0}}, current=2, read_qps=0.0
    )
    assert only_reason(plan, Rule.CAPACITY_MODEL).message == "0 reads/s at 100/s per replica needs 0 replicas"
    assert plan.desired_replicas == 0


def test_no_replica_at_all_is_no_capacity_whatever_the_load() -> None:
    """0 replicas: any read load is beyond their capacity (no division by zero)."""
    plan = plan_for(
        {"replicas": {"targetReadQPSPerReplica": 100.0, "minReplicas": 0}}, current=0, read_qps=150.0
    )
    assert plan.scale_to == 2


def test_the_tolerance_band_is_measured_on_the_replicas_that_serve() -> None:
    """6 replicas, 1 out of the pool for lag: 400 reads/s on the 5 serving x 100/s is a usage of
    0.8, inside a 0.25 band, so nothing changes (on all 6 it would be 0.67, out of the band)."""
    spec = no_stabilization(
        replicas={"targetReadQPSPerReplica": 100.0, "maxReplicas": 20}, behavior={"tolerance": 0.25}
    )
    lags = [9.0, 0.1, 0.1, 0.1, 0.1, 0.1]
    plan = decide(spec, make_obs(current=6, read_qps=400.0, lags=lags), Memory(), 0.0)
    assert Rule.WITHIN_TOLERANCE in rules(plan)
    assert plan.desired_replicas == 6


def test_strong_consistency_is_a_decision_not_a_hold() -> None:
    """Under strong the count is decided (held for reads by design) and recorded in the
    stabilization history, unlike a hold on unknown metrics."""
    plan = decide(make_spec(consistency="strong"), make_obs(current=2), Memory(), 0.0)
    assert plan.memory.recommendations
    assert "MetricsUnknown" not in cond(plan, CT.SCALING_LIMITED).message


# --- stabilization's limits (sizing.stabilize), at their boundaries and in words -------------------
# (Here rather than in test_sizing.py while that file has someone else's edits in progress.)


def windowed(up: int, down: int, up_step: int = 10, down_step: int = 10, **overrides: Any) -> Any:
    behavior = {
        "scaleUp": {"stabilizationWindowSeconds": up, "maxStep": up_step},
        "scaleDown": {"stabilizationWindowSeconds": down, "maxStep": down_step},
    }
    return make_spec(**{"behavior": behavior, **overrides})


@pytest.mark.parametrize(("since", "blocked"), [(299.999, True), (300.0, False)])
def test_the_reversal_guard_after_a_scale_up_lasts_the_scale_down_window(since: float, blocked: bool) -> None:
    spec = windowed(0, 300)
    memory = Memory(
        last_tick=990.0, last_scale_time=1000.0 - since, last_scale_direction=1, recommendations=((990.0, 3),)
    )
    plan = decide(spec, make_obs(current=4, **levels(0.1, 0.5)), memory, 1000.0)
    assert plan.desired_replicas == (4 if blocked else 3)
    assert (cond(plan, CT.SCALING_LIMITED).reason == "ReversalGuard") is blocked


@pytest.mark.parametrize(("since", "blocked"), [(59.999, True), (60.0, False)])
def test_the_reversal_guard_after_a_scale_down_lasts_the_scale_up_window(since: float, blocked: bool) -> None:
    spec = windowed(60, 300, replicas={"targetReadQPSPerReplica": 100.0, "maxReplicas": 20})
    memory = Memory(
        last_tick=990.0,
        last_scale_time=1000.0 - since,
        last_scale_direction=-1,
        recommendations=((990.0, 4),),
    )
    plan = decide(spec, make_obs(current=2, read_qps=400.0), memory, 1000.0)
    assert plan.desired_replicas == (2 if blocked else 4)
    assert (cond(plan, CT.SCALING_LIMITED).reason == "ReversalGuard") is blocked


def test_stabilization_max_step_and_bounds_in_words() -> None:
    spec = windowed(60, 300, up_step=2, replicas={"targetReadQPSPerReplica": 100.0, "maxReplicas": 20})
    # A scale-up window of 60 s with a lower recommendation (3) 30 s ago: the window keeps 3.
    memory = Memory(last_tick=970.0, recommendations=((970.0, 3),))
    kept = decide(spec, make_obs(current=2, read_qps=1000.0), memory, 1000.0)
    window = only_reason(kept, Rule.STABILIZED)
    assert window.message == "stabilization window 60s keeps 3 instead of 10"
    assert window.inputs == (("recommended", 10), ("stabilized", 3))
    # The last recommendation is 60 s old, out of the window: 2 -> 10 asked, max step 2 gives 4.
    stepped = decide(
        spec,
        make_obs(current=2, read_qps=1000.0),
        Memory(last_tick=940.0, recommendations=((940.0, 9),)),
        1000.0,
    )
    step = only_reason(stepped, Rule.STEP_LIMITED)
    assert step.message == "max step limits 2 -> 10 to 2 -> 4"
    assert step.inputs == (("desired", 10), ("stepped", 4))
    assert stepped.desired_replicas == 4
    # Bounds: minReplicas 3 lifts 1 to 3.
    low = decide(make_spec(replicas={"minReplicas": 3}), make_obs(current=1), Memory(), 0.0)
    bound = only_reason(low, Rule.BOUNDS)
    assert bound.message == "minReplicas bounds 1 to 3"
    assert bound.inputs == (("min", 3), ("max", 8))
    assert cond(low, CT.SCALING_LIMITED).reason == "AtMinReplicas"
    high = decide(windowed(0, 0, replicas={"maxReplicas": 3}), make_obs(current=6), Memory(), 0.0)
    assert only_reason(high, Rule.BOUNDS).message == "maxReplicas bounds 6 to 3"
    assert cond(high, CT.SCALING_LIMITED).reason == "AtMaxReplicas"


def test_max_step_is_named_whole() -> None:
    spec = windowed(0, 300, up_step=2, replicas={"targetReadQPSPerReplica": 100.0, "maxReplicas": 20})
    plan = decide(spec, make_obs(current=2, read_qps=1000.0), Memory(), 0.0)
    assert plan.desired_replicas == 4
    assert cond(plan, CT.SCALING_LIMITED).reason == "MaxStep"


def test_holding_the_count_after_a_scale_is_no_reversal() -> None:
    """Right after a scale (either way), a tick that keeps the count reverses nothing."""
    for direction in (1, -1):
        memory = Memory(
            last_tick=990.0,
            last_scale_time=980.0,
            last_scale_direction=direction,
            recommendations=((990.0, 3),),
        )
        plan = decide(windowed(60, 300), make_obs(current=3, **levels(CALM, 0.5)), memory, 1000.0)
        assert plan.desired_replicas == 3
        assert cond(plan, CT.SCALING_LIMITED).status is Status.FALSE


def test_a_scale_down_held_by_its_window_names_that_window() -> None:
    memory = Memory(last_tick=990.0, recommendations=((990.0, 4),))
    plan = decide(windowed(0, 300), make_obs(current=4, **levels(0.1, 0.5)), memory, 1000.0)
    assert plan.desired_replicas == 4
    assert only_reason(plan, Rule.STABILIZED).message == "stabilization window 300s keeps 4 instead of 3"


def test_after_an_outage_longer_than_the_window_a_scale_down_waits_a_whole_window() -> None:
    """docs/decisions.md: a tick that holds records nothing, and the next one seeds the history
    with the current count, so a scale-down after an outage waits a whole window."""
    spec = windowed(0, 300)

    def world(t: float, current: int) -> Any:
        if 0 < t <= 330:
            return make_obs(current=current, read_qps=None)  # a 315 s outage
        return make_obs(current=current, **levels(0.1 if t > 330 else CALM, 0.5))

    ticks = run_ticks(spec, world, ticks=50, current=3)
    downs = [t.t for t in ticks if scaled_down(t.plan)]
    assert downs and downs[0] >= 345 + 300, downs


def test_scaling_to_exactly_max_replicas_is_not_limited() -> None:
    spec = windowed(0, 300, replicas={"targetReadQPSPerReplica": 100.0, "maxReplicas": 5})
    plan = decide(spec, make_obs(current=2, read_qps=500.0), Memory(), 0.0)
    assert plan.scale_to == 5
    assert cond(plan, CT.SCALING_LIMITED).status is Status.FALSE


def test_a_recommendation_over_max_is_limited_even_when_the_count_is_in_range() -> None:
    """At maxReplicas and asked for more (the scale-up window keeps 4 anyway): nothing changes, no
    bound had to cut the count, and ScalingLimited still says the maximum is reached."""
    spec = windowed(60, 300, replicas={"targetReadQPSPerReplica": 100.0, "maxReplicas": 4})
    memory = Memory(last_tick=970.0, recommendations=((970.0, 4),))
    plan = decide(spec, make_obs(current=4, read_qps=1000.0), memory, 1000.0)
    assert plan.scale_to is None
    assert cond(plan, CT.SCALING_LIMITED).reason == "AtMaxReplicas"
    assert Rule.BOUNDS not in rules(plan)


def test_every_condition_type_is_reported_once() -> None:
    plan = plan_for(current=2)
    assert sorted(c.type.value for c in plan.conditions) == sorted(t.value for t in CT)


# --- extreme rates -------------------------------------------------------------------------------

# The ratio's logarithm is taken as log10(read) - log10(write): the quotient of two positive rates
# could underflow to 0.0 (a math domain error) or overflow to inf (status no longer JSON).


def test_a_vanishing_read_rate_does_not_crash_decide() -> None:
    plan = decide(make_spec(), make_obs(read_qps=5e-324, write_qps=2.0), Memory(), 0.0)
    assert plan.workload_class == "WriteDominated"


def test_a_vanishing_write_rate_keeps_memory_json() -> None:
    plan = decide(make_spec(), make_obs(read_qps=1000.0, write_qps=1e-307), Memory(), 0.0)
    assert plan.workload_class == "ReadDominated"
    json.dumps(plan.memory.to_status(), allow_nan=False)


def test_pre_provisioning_within_the_tolerance_names_the_current_count() -> None:
    # 1,500/s on 2 x 1,000/s: within the tolerance, so the capacity model keeps 2 and the
    # recommendation for a rising read share says so.
    spec = make_spec(replicas={"targetReadQPSPerReplica": 1000.0})
    plan = decide(spec, with_ratios(SEED_DRIFT[::-1], current=2, read_qps=1500.0), Memory(), 1000.0)
    pre = next(r for r in plan.recommendations if r.type is RT.PRE_PROVISION_REPLICAS)
    assert pre.replicas == 2
    assert pre.message.endswith("(2 for the forecast load)")


@pytest.mark.parametrize("signal_name", ["readLatencyP99", "writeLatencyP99"])
def test_a_latency_the_preset_cannot_give_does_not_hold_a_capacity_model(signal_name: str) -> None:
    """CloudNativePG without a pooler exports no latency (NotConfigured): with a capacity model
    the replicas are sized from read QPS all the same; without one there is nothing to size from."""
    not_configured = Signal.unknown(
        UnknownReason.NOT_CONFIGURED, f"{signal_name}: CloudNativePG exports none"
    )
    obs = {"read_qps": 1000.0, "write_qps": 10.0, **levels(0.5, 0.5), SIGNALS[signal_name]: not_configured}
    plan = plan_for({"replicas": {"targetReadQPSPerReplica": 100.0}}, current=4, **obs)
    assert plan.scale_to is not None and plan.scale_to > 4
    assert Rule.METRICS_UNKNOWN not in rules(plan)
    assert cond(plan, CT.METRICS_AVAILABLE).status is Status.FALSE, "it still says the latency is missing"
    held = plan_for(current=4, **obs)  # no capacity model
    assert held.scale_to is None and Rule.METRICS_UNKNOWN in rules(held)
