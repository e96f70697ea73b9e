"""Replica sizing (sizing.py): the capacity model and its tolerance band, the read forecast, latency
steps and headroom, then HPA-style stabilization per direction, max steps, min/max bounds with
ScalingLimited, and the reversal guard.

HPA semantics, as the Kubernetes controller has them: a scale-up goes to the LOWEST recommendation
of the scale-up window, a scale-down to the HIGHEST of the scale-down window; a recommendation
counts while it is younger than the window.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace
from typing import Any

import pytest
from tests.unit.builders import (
    READ_OBJECTIVE,
    WRITE_OBJECTIVE,
    assert_readable,
    cond,
    deep_merge,
    make_obs,
    make_spec,
    no_stabilization,
    reason_for,
    rec_types,
    replica,
    rules,
    run_ticks,
    scaled_down,
    scaled_up,
)

from rwscaler.core.decide import decide
from rwscaler.core.memory import Ewma, Memory
from rwscaler.core.observation import History, Season, Signal, UnknownReason
from rwscaler.core.vocabulary import ConditionType as CT
from rwscaler.core.vocabulary import RecommendationType as RT
from rwscaler.core.vocabulary import Rule, Status

CALM = 0.6 * READ_OBJECTIVE  # neither a breach nor headroom
LOW = 0.1 * READ_OBJECTIVE  # headroom: one replica fewer when there is no capacity model
HIGH = 2.0 * READ_OBJECTIVE  # a breach


def capacity_spec(target: float = 100.0, tolerance: float = 0.25, **overrides: Any) -> Any:
    base = {
        "replicas": {"targetReadQPSPerReplica": target, "maxReplicas": 20},
        "behavior": {"tolerance": tolerance, "trend": {"forecastSeconds": 0}},
    }
    return no_stabilization(**deep_merge(base, overrides))


# --- capacity model and the tolerance band ------------------------------------------------------


@pytest.mark.parametrize(
    ("read_qps", "expected"),
    [
        # 4 replicas x 100/s, tolerance 0.25 (binary-exact): no change for 300..400 reads/s;
        # the band is below the target only (docs/decisions.md: the tolerance does not license
        # running past the capacity); under it, ceil(load / capacity)
        (500.0, 5),  # usage exactly 1.25: over the target, ceil(5.0)
        (401.0, 5),  # usage just over 1: scale up at once
        (300.0, 4),  # usage exactly 0.75: inside the band
        (400.0, 4),
        (501.0, 6),  # ceil(5.01)
        (299.0, 3),  # under the band (0.7475 < 0.75): ceil(299 / 100), as the HPA does
        (225.0, 3),  # ceil(2.25)
        (1000.0, 10),
        (50.0, 1),  # ceil(0.5), and the minimum is 1
    ],
)
def test_capacity_model_with_tolerance_band(read_qps: float, expected: int) -> None:
    plan = decide(capacity_spec(), make_obs(current=4, read_qps=read_qps, read_p99=CALM), Memory(), 0.0)
    assert plan.desired_replicas == expected
    assert (plan.scale_to is None) == (expected == 4)
    if expected == 4:
        assert Rule.WITHIN_TOLERANCE in rules(plan)
    else:
        reason = next(r for r in plan.reasons if r.rule is Rule.CAPACITY_MODEL)
        assert_readable(reason.message)
        assert f"{read_qps:.0f} reads/s" in reason.message


def test_capacity_model_idle_goes_to_the_minimum() -> None:
    spec = capacity_spec(replicas={"minReplicas": 2})
    plan = decide(spec, make_obs(current=5, read_qps=0.0, write_qps=0.0, read_p99=CALM), Memory(), 0.0)
    assert plan.workload_class == "Idle"
    assert plan.desired_replicas == 2
    assert plan.scale_to == 2


def test_forecast_provisions_ahead_of_a_read_ramp() -> None:
    """Reads climb 2/s every second with latency calm all along: with a 120 s forecast the replicas
    run ahead of what today's reads need; without a forecast they only follow."""

    def ramp(forecast: int) -> list[Any]:
        spec = make_spec(
            replicas={"targetReadQPSPerReplica": 100.0, "maxReplicas": 30},
            behavior={
                "scaleUp": {"stabilizationWindowSeconds": 0, "maxStep": 10},
                "trend": {"forecastSeconds": forecast},
            },
        )
        return run_ticks(
            spec,
            lambda t, c: make_obs(current=c, read_qps=200.0 + 2.0 * t, read_p99=CALM),
            ticks=30,
            current=2,
        )

    ahead, behind = ramp(120), ramp(0)
    late = [i for i, t in enumerate(ahead) if t.t >= 360]
    leads: list[int] = []
    for i in late:
        needed = math.ceil((200.0 + 2.0 * ahead[i].t) / 100.0)
        assert ahead[i].plan.desired_replicas >= needed, "never behind the load"
        assert behind[i].plan.desired_replicas <= math.ceil(needed * 1.1), "no forecast, no lead"
        leads.append(ahead[i].plan.desired_replicas - behind[i].plan.desired_replicas)
    assert min(leads) >= 0
    # A forecast must pass the capacity by more than the tolerance while the present load scales
    # up as soon as it passes it (docs/decisions.md), so the lead is under a replica on average.
    assert sum(leads) / len(leads) >= 0.5, f"the forecast should lead: {leads}"
    assert any(Rule.READ_FORECAST in rules(t.plan) for t in ahead)
    assert not any(Rule.READ_FORECAST in rules(t.plan) for t in behind)
    # Nothing here was a latency breach: this is pre-provisioning, not reaction.
    assert not any(Rule.LATENCY_STEP in rules(t.plan) for t in ahead)


def test_replicas_out_of_the_pool_for_lag_are_replaced() -> None:
    """With a capacity model, a replica that left the pool for lag carries no reads: one more is asked."""
    spec = capacity_spec(tolerance=0.1)
    mem = decide(spec, make_obs(current=3, read_qps=300.0, read_p99=CALM), Memory(), 0.0).memory
    lagging = make_obs(
        current=3, read_qps=300.0, read_p99=CALM, replicas=[replica(0), replica(1), replica(2, 9.0)]
    )
    plan = decide(spec, lagging, mem, 15.0)
    assert plan.desired_replicas == 4
    assert "lag" in next(r.message for r in plan.reasons if r.rule is Rule.CAPACITY_MODEL)


# --- latency step and headroom -------------------------------------------------------------------


def test_latency_step_waits_for_replicas_still_starting() -> None:
    """A breach that lasts one provisioning delay must not add a replica every tick."""
    spec = no_stabilization()
    starting = [replica(0), replica(1), replica(2, None, ready=False), replica(3, None, ready=False)]
    plan = decide(spec, make_obs(current=4, replicas=starting, read_p99=HIGH), Memory(), 0.0)
    assert plan.desired_replicas == 4
    assert not scaled_up(plan)
    assert "starting" in next(r.message for r in plan.reasons if r.rule is Rule.LATENCY_STEP)


def test_latency_step_with_a_capacity_model_adds_one_over_the_model() -> None:
    spec = capacity_spec(tolerance=0.1)
    plan = decide(spec, make_obs(current=3, read_qps=300.0, read_p99=HIGH), Memory(), 0.0)
    assert plan.desired_replicas == 4


def test_headroom_removes_one_replica_without_a_capacity_model() -> None:
    plan = decide(no_stabilization(), make_obs(current=4, read_p99=LOW), Memory(), 0.0)
    assert plan.desired_replicas == 3
    assert Rule.LATENCY_HEADROOM in rules(plan)


@pytest.mark.parametrize("read_level", [0.5, 0.6, 0.9])
def test_no_headroom_at_or_over_half_the_objective(read_level: float) -> None:
    plan = decide(
        no_stabilization(), make_obs(current=4, read_p99=read_level * READ_OBJECTIVE), Memory(), 0.0
    )
    assert plan.desired_replicas == 4


def test_learned_capacity_guards_headroom() -> None:
    """A breach at 500 reads/s per replica is remembered; later, low latency does not remove a
    replica if the rest would carry more than 90% of that, but does when they would carry less."""
    spec = no_stabilization()
    breach = decide(spec, make_obs(current=2, read_qps=1000.0, read_p99=HIGH), Memory(), 0.0)
    assert breach.memory.breach_qps_per_replica == pytest.approx(500.0)
    keep = decide(spec, make_obs(current=3, read_qps=1000.0, read_p99=LOW), breach.memory, 15.0)
    assert keep.desired_replicas == 3, "2 replicas would carry 500/s each: what breached before"
    drop = decide(spec, make_obs(current=3, read_qps=800.0, read_p99=LOW), breach.memory, 15.0)
    assert drop.desired_replicas == 2, "2 replicas at 400/s each are under the learned 450/s"


# --- stabilization windows (HPA semantics) ------------------------------------------------------


def windows(up: int, down: int, up_step: int = 10, down_step: int = 10, **overrides: Any) -> Any:
    return make_spec(
        behavior={
            "scaleUp": {"stabilizationWindowSeconds": up, "maxStep": up_step},
            "scaleDown": {"stabilizationWindowSeconds": down, "maxStep": down_step},
        },
        **overrides,
    )


def first_scale(ticks: list[Any]) -> float | None:
    return next((t.t for t in ticks if t.plan.scale_to is not None), None)


@pytest.mark.parametrize("window", [60, 300])
def test_scale_down_waits_until_every_higher_recommendation_has_left_the_window(window: int) -> None:
    spec = windows(0, window)
    # Calm (hold at 4) for 120 s, then low latency (one fewer) from t=120 on.
    ticks = run_ticks(
        spec, lambda t, c: make_obs(current=c, read_p99=CALM if t < 120 else LOW), ticks=40, current=4
    )
    last_hold = 105.0
    assert first_scale(ticks) == last_hold + window
    assert all(not scaled_down(t.plan) for t in ticks if t.t < last_hold + window)
    during = next(t.plan for t in ticks if t.t == 120.0)
    assert Rule.STABILIZED in rules(during)


@pytest.mark.parametrize("window", [30, 90])
def test_scale_up_waits_until_every_lower_recommendation_has_left_the_window(window: int) -> None:
    spec = windows(window, 300)
    ticks = run_ticks(
        spec, lambda t, c: make_obs(current=c, read_p99=CALM if t < 60 else HIGH), ticks=20, current=2
    )
    assert first_scale(ticks) == 45.0 + window
    assert ticks[int((45 + window) / 15)].plan.scale_to == 4  # the lowest of the window: every rec was 4


def test_scale_down_window_shorter_than_the_scale_up_window_has_the_same_edge() -> None:
    """The edge is the same whichever window is the longest (the history keeps the longest)."""
    spec = windows(600, 60)
    ticks = run_ticks(
        spec, lambda t, c: make_obs(current=c, read_p99=CALM if t < 120 else LOW), ticks=20, current=4
    )
    assert first_scale(ticks) == 105.0 + 60


@pytest.mark.parametrize("window", [30, 90])
def test_scale_up_happens_once_the_window_holds_only_higher_recommendations(window: int) -> None:
    """Whatever the edge, the scale-up comes within one tick of the window and goes to the lowest
    recommendation of the window."""
    spec = windows(window, 300)
    ticks = run_ticks(
        spec, lambda t, c: make_obs(current=c, read_p99=CALM if t < 60 else HIGH), ticks=20, current=2
    )
    first = first_scale(ticks)
    assert first is not None and 45.0 + window <= first <= 60.0 + window
    assert all(t.plan.scale_to is None for t in ticks if t.t < 45.0 + window)
    assert ticks[int(first / 15)].plan.scale_to == 4


def test_scale_up_window_zero_acts_at_once() -> None:
    ticks = run_ticks(
        windows(0, 300), lambda t, c: make_obs(current=c, read_p99=CALM if t < 60 else HIGH), ticks=6
    )
    assert first_scale(ticks) == 60.0


def test_scale_down_goes_to_the_highest_recommendation_of_the_window() -> None:
    """Recommendations 8, then 6, then 3 (capacity model): after the window the count goes to the
    highest of what is still in the window, not to the latest."""
    spec = windows(0, 60, replicas={"targetReadQPSPerReplica": 100.0, "maxReplicas": 20})
    spec = spec.model_copy(update={"behavior": spec.behavior.model_copy(update={"tolerance": 0.0})})

    def world(t: float, current: int) -> Any:
        reads = 800.0 if t < 30 else 600.0 if t < 75 else 300.0
        return make_obs(current=current, read_qps=reads, read_p99=CALM)

    ticks = run_ticks(spec, world, ticks=12, current=8, step=15)
    by_time = {t.t: t for t in ticks}
    # 800 at 0 and 15; 600 at 30..60; 300 from 75. The last 8 is at 15: at 75 it is 60 s old.
    assert by_time[75.0].plan.scale_to == 6
    # The last 6 is at 60: at 120 it is 60 s old, and the count goes to 3.
    assert all(by_time[t].plan.scale_to is None for t in (90.0, 105.0))
    assert by_time[120.0].plan.scale_to == 3


def test_flapping_load_does_not_flap_replicas() -> None:
    spec = windows(0, 300)
    ticks = run_ticks(
        spec, lambda t, c: make_obs(current=c, read_p99=LOW if int(t / 15) % 2 else CALM), ticks=60, current=4
    )
    assert not any(scaled_down(t.plan) for t in ticks)


def test_first_tick_does_not_scale_down_inside_the_window() -> None:
    """With no history (a new resource, or status lost) the HPA seeds its history with the current
    count: a scale-down waits its window instead of happening on the first tick."""
    plan = decide(make_spec(), make_obs(current=3, read_p99=LOW), Memory(), 1000.0)
    assert plan.desired_replicas == 3
    assert plan.scale_to is None
    ticks = run_ticks(make_spec(), lambda t, c: make_obs(current=c, read_p99=LOW), ticks=25, current=3)
    assert first_scale(ticks) == 300.0


def test_first_tick_scale_up_is_not_held_back() -> None:
    plan = decide(make_spec(), make_obs(current=2, read_p99=HIGH), Memory(), 1000.0)
    assert plan.scale_to == 4


# --- max steps ----------------------------------------------------------------------------------


def test_max_step_up_limits_each_step() -> None:
    spec = windows(0, 300, up_step=2, replicas={"targetReadQPSPerReplica": 100.0, "maxReplicas": 20})
    ticks = run_ticks(
        spec, lambda t, c: make_obs(current=c, read_qps=1000.0, read_p99=CALM), ticks=6, current=2
    )
    assert [t.plan.scale_to for t in ticks] == [4, 6, 8, 10, None, None]
    limited = cond(ticks[0].plan, CT.SCALING_LIMITED)
    assert limited.status is Status.TRUE and "MaxStep" in limited.message
    assert Rule.STEP_LIMITED in rules(ticks[0].plan)


def test_max_step_down_limits_each_step() -> None:
    spec = windows(0, 0, down_step=1, replicas={"targetReadQPSPerReplica": 100.0, "maxReplicas": 20})
    ticks = run_ticks(
        spec, lambda t, c: make_obs(current=c, read_qps=150.0, read_p99=CALM), ticks=5, current=6
    )
    assert [t.plan.scale_to for t in ticks] == [5, 4, 3, 2, None]


# --- min/max bounds ------------------------------------------------------------------------------


def test_at_max_replicas_reports_scaling_limited_and_asks_to_raise_the_bound() -> None:
    spec = no_stabilization(replicas={"maxReplicas": 5, "targetReadQPSPerReplica": 100.0})
    plan = decide(spec, make_obs(current=4, read_qps=900.0, read_p99=CALM), Memory(), 0.0)
    assert plan.desired_replicas == 5
    limited = cond(plan, CT.SCALING_LIMITED)
    assert limited.status is Status.TRUE
    assert limited.reason == "AtMaxReplicas"
    add = next(r for r in plan.recommendations if r.type is RT.ADD_READ_REPLICAS)
    assert "maxReplicas" in add.message
    # Already at the maximum: nothing to do, still limited.
    at_max = decide(spec, make_obs(current=5, read_qps=900.0, read_p99=CALM), Memory(), 0.0)
    assert at_max.scale_to is None
    assert cond(at_max, CT.SCALING_LIMITED).reason == "AtMaxReplicas"


def test_the_binding_limit_is_the_one_reported() -> None:
    """4 -> 20 asked; the step would allow 14 but maxReplicas is 5: the bound is what limits."""
    spec = no_stabilization(replicas={"maxReplicas": 5, "targetReadQPSPerReplica": 100.0})
    plan = decide(spec, make_obs(current=4, read_qps=2000.0, read_p99=CALM), Memory(), 0.0)
    assert plan.desired_replicas == 5
    assert cond(plan, CT.SCALING_LIMITED).reason == "AtMaxReplicas"
    assert Rule.STEP_LIMITED not in rules(plan)


def test_below_min_replicas_scales_up_to_the_minimum() -> None:
    plan = decide(make_spec(replicas={"minReplicas": 3}), make_obs(current=1, read_p99=CALM), Memory(), 0.0)
    assert plan.scale_to == 3
    assert Rule.BOUNDS in rules(plan)


def test_above_max_replicas_scales_down_to_the_maximum() -> None:
    plan = decide(
        no_stabilization(replicas={"maxReplicas": 3}), make_obs(current=6, read_p99=CALM), Memory(), 0.0
    )
    assert plan.desired_replicas == 3
    assert Rule.BOUNDS in rules(plan)


def test_headroom_at_min_replicas_is_limited() -> None:
    plan = decide(
        no_stabilization(replicas={"minReplicas": 2}), make_obs(current=2, read_p99=LOW), Memory(), 0.0
    )
    assert plan.desired_replicas == 2
    assert plan.scale_to is None
    assert cond(plan, CT.SCALING_LIMITED).reason == "AtMinReplicas"


def test_within_bounds_scaling_is_not_limited() -> None:
    plan = decide(no_stabilization(), make_obs(current=2, read_p99=HIGH), Memory(), 0.0)
    limited = cond(plan, CT.SCALING_LIMITED)
    assert limited.status is Status.FALSE
    assert limited.reason == "DesiredWithinRange"


# --- reversal guard ------------------------------------------------------------------------------


def test_reversal_guard_blocks_a_scale_down_right_after_a_scale_up() -> None:
    """Even when the recommendation history says fewer (for example status rewritten by hand), the
    last scale direction keeps a scale-down out of the scale-down window after a scale-up."""
    spec = windows(0, 300)
    after_up = Memory(
        last_tick=990.0, last_scale_time=900.0, last_scale_direction=1, recommendations=((990.0, 3),)
    )
    plan = decide(spec, make_obs(current=4, read_p99=LOW), after_up, 1000.0)
    assert plan.desired_replicas == 4
    assert "ReversalGuard" in cond(plan, CT.SCALING_LIMITED).message
    later_memory = replace(after_up, last_tick=1290.0, recommendations=((1290.0, 3),))
    later = decide(spec, make_obs(current=4, read_p99=LOW), later_memory, 1300.0)
    assert later.desired_replicas == 3


def test_reversal_guard_blocks_a_scale_up_right_after_a_scale_down() -> None:
    spec = windows(60, 300)
    after_down = Memory(last_tick=990.0, last_scale_time=980.0, last_scale_direction=-1)
    plan = decide(spec, make_obs(current=2, read_p99=HIGH), after_down, 1000.0)
    assert plan.desired_replicas == 2


def test_add_read_replicas_recommendation_carries_the_target() -> None:
    plan = decide(no_stabilization(), make_obs(current=2, read_p99=HIGH), Memory(), 0.0)
    assert RT.ADD_READ_REPLICAS in rec_types(plan)
    add = next(r for r in plan.recommendations if r.type is RT.ADD_READ_REPLICAS)
    assert add.replicas == plan.desired_replicas


UNREACHABLE = Signal.unknown(UnknownReason.UNREACHABLE, "connection refused")


def test_no_scale_down_on_the_first_sample_after_an_outage_longer_than_the_window() -> None:
    spec = make_spec(behavior={"scaleDown": {"stabilizationWindowSeconds": 300, "maxStep": 1}})
    calm = make_obs(current=4, lags=[0.1] * 4, read_p99=0.1 * READ_OBJECTIVE, read_qps=100.0)
    blind = make_obs(
        current=4,
        lags=[UNREACHABLE] * 4,
        read_qps=UNREACHABLE,
        write_qps=UNREACHABLE,
        read_p99=UNREACHABLE,
        write_p99=UNREACHABLE,
    )
    seen = [blind] * 30 + [calm] * 2  # 450 s blind at 15 s ticks, then low load
    ticks = run_ticks(spec, [calm, *seen], step=15.0)
    assert all(t.plan.scale_to is None for t in ticks), [t.plan.summary for t in ticks if t.plan.scale_to]


# --- boundaries a mutation run found untested (docs/testing-core.md) ----------------------------


def _memory(fast: float, slope_per_s: float = 0.0) -> Memory:
    """Read-QPS averages with this 60 s average and slope, and no time since they were updated (this
    tick leaves them as they are: the slope is the averages' gap over 300 s - 60 s)."""
    return Memory(read_qps=Ewma(fast=fast, slow=fast - 240.0 * slope_per_s, since=-1e6), ewma_time=0.0)


@pytest.mark.parametrize(("sample", "expected"), [(500.0, 4), (501.0, 6)])
def test_a_sample_past_the_band_scales_up_on_its_own_but_not_at_its_edge(
    sample: float, expected: int
) -> None:
    # 4 x 100/s, tolerance 0.25: the band's top is 500/s; the 60 s average (390/s) is under 400/s.
    plan = decide(capacity_spec(), make_obs(current=4, read_qps=sample, read_p99=CALM), _memory(390.0), 0.0)
    assert plan.desired_replicas == expected  # ceil(501 / 100) = 6


@pytest.mark.parametrize(("slope", "expected"), [(2.0, 4), (2.01, 6)])
def test_a_forecast_at_the_bands_edge_does_not_scale_up(slope: float, expected: int) -> None:
    # 300/s now, forecast 300 + slope x 100 s: 500/s is exactly 1.25 x 4 x 100/s.
    spec = capacity_spec(behavior={"trend": {"forecastSeconds": 100}})
    plan = decide(spec, make_obs(current=4, read_qps=300.0, read_p99=CALM), _memory(300.0, slope), 0.0)
    assert plan.desired_replicas == expected  # ceil(502 / 100) = 6


def test_no_forecast_stacks_on_even_one_starting_replica() -> None:
    # 4 replicas, one not ready yet (asked for, starting): the forecast 300 + 3 x 100 = 600/s would
    # ask for 6, but only the present load (300/s, under 400/s) may add replicas meanwhile.
    spec = capacity_spec(behavior={"trend": {"forecastSeconds": 100}})
    reps = [replica(0), replica(1), replica(2), replica(3, ready=False)]
    plan = decide(
        spec, make_obs(current=4, read_qps=300.0, read_p99=CALM, replicas=reps), _memory(300.0, 3.0), 0.0
    )
    assert plan.desired_replicas == 4


def test_a_scale_down_keeps_the_replacements_for_lagging_replicas() -> None:
    # 5 replicas, one out of the pool for lag: 150/s needs ceil(150 / 100) = 2 serving, plus the
    # lagging one's replacement: 3 (usage 150 / 400 is under the band's bottom 0.75).
    plan = decide(
        capacity_spec(),
        make_obs(current=5, read_qps=150.0, read_p99=CALM, lags=[9.0, 0.1, 0.1, 0.1, 0.1]),
        Memory(),
        0.0,
    )
    assert plan.desired_replicas == 3


@pytest.mark.parametrize(("read_qps", "expected"), [(750.0, 2), (749.0, 1)])
def test_headroom_removes_a_replica_only_under_the_learned_capacity_less_the_tolerance(
    read_qps: float, expected: int
) -> None:
    # Learned 1,000/s per replica, tolerance 0.25: one replica fewer only if the one left would
    # carry less than 750/s (docs/decisions.md: latency headroom).
    spec = no_stabilization(behavior={"tolerance": 0.25}, replicas={"minReplicas": 0})
    memory = Memory(breach_qps_per_replica=1000.0, breach_time=0.0)
    plan = decide(spec, make_obs(current=2, read_qps=read_qps, read_p99=LOW), memory, 0.0)
    assert plan.desired_replicas == expected


def test_headroom_can_remove_the_last_replica_down_to_min_replicas_zero() -> None:
    spec = no_stabilization(replicas={"minReplicas": 0})
    plan = decide(spec, make_obs(current=1, read_qps=10.0, read_p99=LOW), Memory(), 0.0)
    assert plan.desired_replicas == 0


# --- what the reasons say (docs/decisions.md; `rwscaler explain` prints them) -------------------


def test_within_tolerance_says_it_waits_for_starting_replicas_before_the_forecast() -> None:
    spec = capacity_spec(behavior={"trend": {"forecastSeconds": 100}})
    reps = [replica(0), replica(1), replica(2), replica(3, ready=False)]
    waiting = decide(
        spec, make_obs(current=4, read_qps=300.0, read_p99=CALM, replicas=reps), _memory(300.0, 3.0), 0.0
    )
    assert reason_for(waiting, Rule.WITHIN_TOLERANCE).message.endswith(
        "; waiting for the replicas asked for to serve before provisioning for the forecast"
    )
    # Starting replicas but a forecast within the band (300 + 2 x 100 = 500/s, exactly 1.25 x
    # 400/s): nothing to wait for, the tolerance is what holds.
    within = decide(
        spec, make_obs(current=4, read_qps=300.0, read_p99=CALM, replicas=reps), _memory(300.0, 2.0), 0.0
    )
    assert reason_for(within, Rule.WITHIN_TOLERANCE).message.endswith("within its 25% tolerance")
    calm = decide(spec, make_obs(current=4, read_qps=300.0, read_p99=CALM), _memory(300.0), 0.0)
    assert reason_for(calm, Rule.WITHIN_TOLERANCE).message.endswith("within its 25% tolerance")


def test_a_scale_down_held_by_a_season_names_the_season_as_its_basis() -> None:
    # 5 replicas x 100/s, 150/s now; yesterday the next hour needed 260/s: keep 3, basis yesterday.
    spec = capacity_spec()
    held = History(horizon_up_s=300.0, horizon_down_s=3900.0, seasons=(Season(86400.0, 150.0, None, 260.0),))
    obs = dataclasses.replace(make_obs(current=5, read_qps=150.0, read_p99=CALM), history=held)
    plan = decide(spec, obs, Memory(), 0.0)
    assert plan.desired_replicas == 3
    model = reason_for(plan, Rule.CAPACITY_MODEL)
    assert dict(model.inputs)["basis"] == "yesterday"
    assert dict(model.inputs)["forecastQPS"] == pytest.approx(260.0)
    assert "forecast (as yesterday) 260/s needs 3" in model.message
    plain = decide(spec, make_obs(current=5, read_qps=150.0, read_p99=CALM), Memory(), 0.0)
    assert dict(reason_for(plain, Rule.CAPACITY_MODEL).inputs)["basis"] == "present"
    # A season that needed less than the present load keeps nothing: the present is the basis.
    lull = History(horizon_up_s=300.0, horizon_down_s=3900.0, seasons=(Season(86400.0, 150.0, 100.0, 100.0),))
    obs = dataclasses.replace(make_obs(current=5, read_qps=150.0, read_p99=CALM), history=lull)
    assert (
        dict(reason_for(decide(spec, obs, Memory(), 0.0), Rule.CAPACITY_MODEL).inputs)["basis"] == "present"
    )


def test_the_forecast_reason_says_which_basis_provisioned() -> None:
    spec = capacity_spec(behavior={"trend": {"forecastSeconds": 100}})
    climbing = decide(spec, make_obs(current=4, read_qps=300.0, read_p99=CALM), _memory(300.0, 3.0), 0.0)
    assert reason_for(climbing, Rule.READ_FORECAST).message.startswith("reads climbing 180/s per minute")
    rush = History(horizon_up_s=500.0, horizon_down_s=3900.0, seasons=(Season(86400.0, 300.0, 900.0, 900.0),))
    obs = dataclasses.replace(make_obs(current=4, read_qps=300.0, read_p99=CALM), history=rush)
    seasonal = decide(spec, obs, _memory(300.0), 0.0)
    assert reason_for(seasonal, Rule.READ_FORECAST).message.startswith(
        "yesterday the read load rose to 900/s (scaled to today)"
    )


def test_the_latency_rules_name_their_inputs() -> None:
    step = decide(no_stabilization(), make_obs(current=2, read_p99=HIGH), Memory(), 0.0)
    assert dict(reason_for(step, Rule.LATENCY_STEP).inputs)["readLatencyRatio"] == pytest.approx(2.0)
    memory = Memory(breach_qps_per_replica=5000.0, breach_time=0.0)
    headroom = decide(no_stabilization(), make_obs(current=4, read_p99=LOW), memory, 0.0)
    inputs = dict(reason_for(headroom, Rule.LATENCY_HEADROOM).inputs)
    assert inputs == {"readLatencyRatio": pytest.approx(0.1), "learnedQPSPerReplica": 5000.0}


def test_a_learned_capacity_under_the_target_says_it_replaces_the_target() -> None:
    # 4 replicas at 200/s each break the objective, under the 800/s target: learned, sized with.
    spec = capacity_spec(target=800.0, tolerance=0.1)
    plan = decide(spec, make_obs(current=4, read_qps=800.0, read_p99=HIGH), Memory(), 0.0)
    assert reason_for(plan, Rule.LEARNED_CAPACITY).message == (
        "read p99 broke its objective at 200 reads/s per replica: capacity learned, sizing with it "
        "instead of targetReadQPSPerReplica 800"
    )


@pytest.mark.parametrize(("per_replica", "learned"), [(200.0, 200.0), (199.0, None)])
def test_a_breach_under_a_quarter_of_the_target_teaches_nothing(
    per_replica: float, learned: float | None
) -> None:
    # docs/decisions.md: a breach while each replica carries under 25% of the 800/s target is
    # not about read capacity.
    spec = capacity_spec(target=800.0, tolerance=0.1)
    plan = decide(spec, make_obs(current=4, read_qps=4 * per_replica, read_p99=HIGH), Memory(), 0.0)
    assert plan.memory.breach_qps_per_replica == learned


def test_a_scale_down_is_not_held_for_slow_reads_no_replica_serves() -> None:
    """A write flood: every replica lags, reads fell back to the primary, which is slow: removing a
    replica slows no read, so the capacity model's scale-down is not held (docs/decisions.md)."""
    spec = no_stabilization(replicas={"targetReadQPSPerReplica": 800.0, "maxReplicas": 10})
    flood = {"read_p99": HIGH, "write_p99": 2 * WRITE_OBJECTIVE, "write_qps": 1800.0}
    lagging = make_obs(current=3, read_qps=60.0, lags=[9.0, 9.0, 9.0], **flood)
    assert decide(spec, lagging, Memory(), 0.0).desired_replicas == 1
    serving = make_obs(current=3, read_qps=60.0, lags=[0.1, 9.0, 9.0], **flood)
    assert decide(spec, serving, Memory(), 0.0).desired_replicas == 3, "a replica serves: slow reads hold it"


def test_no_scale_down_while_reads_rise_says_so() -> None:
    # Reads climbing toward the objective (p99 at 0.9 of it, its fast average well above its slow
    # one) while the capacity model would remove replicas: held, and the reason says why.
    spec = capacity_spec()
    memory = Memory(read_latency=Ewma(fast=0.04, slow=0.02, since=-1e6), ewma_time=0.0)
    plan = decide(spec, make_obs(current=4, read_qps=100.0, read_p99=0.9 * READ_OBJECTIVE), memory, 0.0)
    assert plan.desired_replicas == 4
    held = [r for r in plan.reasons if r.rule is Rule.LATENCY_STEP]
    assert [r.message for r in held] == ["no scale-down while read p99 is rising (0.90x its objective)"]
    assert held[0].inputs == (("readLatencyRatio", pytest.approx(0.9)),)


def test_a_write_bound_tick_that_would_not_scale_up_is_no_refusal() -> None:
    # Writes breach, reads calm and within the capacity model: nothing was refused, so
    # ScalingLimited does not name WriteBottleneck (docs/decisions.md: a refusal is of a scale-up).
    spec = capacity_spec(tolerance=0.1)
    plan = decide(
        spec, make_obs(current=4, read_qps=350.0, read_p99=CALM, write_p99=3 * WRITE_OBJECTIVE), Memory(), 0.0
    )
    assert plan.desired_replicas == 4
    assert "WriteBottleneck" not in cond(plan, CT.SCALING_LIMITED).message


def test_without_a_target_any_read_load_can_teach_a_capacity() -> None:
    # No target, no floor: a breach at half a read per second per replica is learned.
    plan = decide(no_stabilization(), make_obs(current=2, read_qps=1.0, read_p99=HIGH), Memory(), 0.0)
    assert plan.memory.breach_qps_per_replica == pytest.approx(0.5)
