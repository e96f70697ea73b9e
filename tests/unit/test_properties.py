"""Hypothesis properties of decide over generated specs and observation sequences.

Each example is a spec and a sequence of ticks; the replica count follows each plan's scale_to (as
the operator's scale of the StatefulSet makes it) and starts within the bounds. On every tick:

- min <= desired <= max, and scale_to is within the bounds;
- the read pool is never empty, holds only the primary and replicas that may serve, and never a
  replica being drained or removed;
- no scale-up while write-bound (write p99 breached, read p99 under APPROACH x its objective), on
  the mixed runs and on runs built to be write-bound with read pressure (the capacity model asks
  for more replicas on every tick, so only the refusal keeps them out);
- no scale-down while a signal is unknown;
- no direction reversal inside a stabilization window (after a scale-up at t, no scale-down before
  t + the scale-down window, and vice versa);
- Recommend mode never asks for an action;
- a plan that acts names its rules in readable words;
- memory round-trips through JSON.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.builders import PRIMARY, assert_readable, make_obs, make_spec, replica

from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.observation import History, Observation, RatioHistory, Season
from rwscaler.core.plan import Plan
from rwscaler.core.spec import Consistency, Mode, ReadWriteWorkloadSpec
from rwscaler.core.vocabulary import ConditionType, Rule

APPROACH = 0.8  # docs/decisions.md, "Rising and stable": approaching is p99 >= 0.8 x objective

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STEP = 15.0
# metav1.Condition's reason: CamelCase, as the API server validates it.
CONDITION_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")


@st.composite
def specs(draw: st.DrawFn) -> ReadWriteWorkloadSpec:
    lo = draw(st.integers(0, 4))
    hi = draw(st.integers(max(lo, 1), 8))
    pooler: dict[str, Any] = draw(
        st.sampled_from([{"kind": "None"}, {"kind": "EndpointSlice", "readService": "db-read"}])
    )
    pooler["drainTimeoutSeconds"] = draw(st.sampled_from([0, 15, 60]))
    return make_spec(
        replicas={
            "minReplicas": lo,
            "maxReplicas": hi,
            "targetReadQPSPerReplica": draw(st.one_of(st.none(), st.sampled_from([50.0, 200.0, 1000.0]))),
        },
        consistency=draw(st.sampled_from(["eventual", "eventual", "bounded", "strong"])),
        pooler=pooler,
        mode=draw(st.sampled_from(["Enforce", "Enforce", "Enforce", "Recommend"])),
        behavior={
            "tolerance": draw(st.sampled_from([0.0, 0.1, 0.25])),
            "scaleUp": {
                "stabilizationWindowSeconds": draw(st.sampled_from([0, 30, 60])),
                "maxStep": draw(st.integers(1, 4)),
            },
            "scaleDown": {
                "stabilizationWindowSeconds": draw(st.sampled_from([0, 45, 120, 300])),
                "maxStep": draw(st.integers(1, 3)),
            },
            "readPool": {"reentrySeconds": draw(st.sampled_from([0, 30]))},
            "trend": {"forecastSeconds": draw(st.sampled_from([0, 120]))},
        },
    )


def maybe(values: st.SearchStrategy[float]) -> st.SearchStrategy[float | None]:
    return st.one_of(values, values, values, values, st.none())


def around(edges: list[float], top: float) -> st.SearchStrategy[float]:
    """Values at and around the thresholds that matter, and anything in between."""
    return st.one_of(st.sampled_from(edges), st.floats(0, top))


# Rates as Prometheus gives them: 0, or at least a millionth per second. (Ratios of subnormal rates
# crash decide: see test_decide_rules' extreme-rate tests.)
QPS = st.one_of(st.sampled_from([0.0, 1.0, 10.0, 100.0, 1000.0]), st.floats(5e-324, 5000))
# p99 / objective: headroom under 0.5, APPROACH 0.8, the tolerance band up to 1.25.
LEVEL = around([0.0, 0.3, 0.49, 0.5, 0.79, 0.8, 0.9, 1.0, 1.1, 1.11, 1.25, 1.26, 2.0, 4.0], 4.0)
# seconds, against the 5 s objective and the 2.5 s re-entry threshold
LAG = around([0.0, 0.1, 2.4, 2.5, 2.6, 4.9, 5.0, 5.1, 9.0], 12.0)


@dataclass(frozen=True)
class TickInput:
    read_qps: float | None
    write_qps: float | None
    read_level: float | None  # p99 / objective
    write_level: float | None
    lags: tuple[float | None, ...]  # cycled over the replicas
    not_ready: int  # the ordinal of a replica that is not ready (-1: all ready)
    synchronous: bool  # replica 0 is synchronous (strong consistency's pool)
    connections: int | None
    history: History = dataclasses.field(default_factory=History)  # seasons and ratio points, or none


ticks_strategy = st.builds(
    TickInput,
    read_qps=maybe(QPS),
    write_qps=maybe(QPS),
    read_level=maybe(LEVEL),
    write_level=maybe(LEVEL),
    lags=st.lists(maybe(LAG), min_size=1, max_size=3).map(tuple),
    not_ready=st.integers(-1, 3),
    synchronous=st.booleans(),
    connections=st.sampled_from([None, 0, 2]),
    history=st.one_of(
        st.just(History()),
        st.builds(
            History,
            horizon_up_s=st.just(435.0),
            horizon_down_s=st.just(3900.0),
            seasons=st.lists(
                st.builds(Season, st.sampled_from([86400.0, 604800.0]), maybe(QPS), maybe(QPS), maybe(QPS)),
                max_size=2,
            ).map(tuple),
            ratios=st.one_of(
                st.none(),
                st.builds(
                    RatioHistory,
                    period_s=st.just(604800.0),
                    points=st.lists(maybe(QPS), max_size=12).map(tuple),
                    shift_s=st.just(259200.0),
                    recent=maybe(QPS),
                    recent_before=maybe(QPS),
                ),
            ),
        ),
    ),
)


def observe(spec: ReadWriteWorkloadSpec, tick: TickInput, current: int) -> Observation:
    o = spec.objectives

    reps = [
        replica(
            i,
            tick.lags[i % len(tick.lags)],
            ready=i != tick.not_ready,
            synchronous=tick.synchronous and i == 0,
            connections=tick.connections,
        )
        for i in range(current)
    ]
    obs = make_obs(
        current=current,
        read_qps=tick.read_qps,
        write_qps=tick.write_qps,
        read_p99=None if tick.read_level is None else tick.read_level * o.read_latency_s,
        write_p99=None if tick.write_level is None else tick.write_level * o.write_latency_s,
        replicas=reps,
    )
    return dataclasses.replace(obs, history=tick.history)


@dataclass
class Step:
    t: float
    obs: Observation
    plan: Plan


def simulate(spec: ReadWriteWorkloadSpec, start: int, inputs: list[TickInput]) -> list[Step]:
    memory, current, steps = Memory(), start, []
    for i, tick in enumerate(inputs):
        obs = observe(spec, tick, current)
        plan = decide(spec, obs, memory, i * STEP)
        steps.append(Step(i * STEP, obs, plan))
        memory = plan.memory
        if plan.scale_to is not None:
            current = plan.scale_to
    return steps


scenarios = st.tuples(specs(), st.integers(0, 8), st.lists(ticks_strategy, min_size=1, max_size=20))


def start_within(spec: ReadWriteWorkloadSpec, start: int) -> int:
    return min(max(start, spec.replicas.minReplicas), spec.replicas.maxReplicas)


# --- the properties, one function each, all checked on the same generated runs --------------------


def check_bounds(spec: ReadWriteWorkloadSpec, step: Step) -> None:
    lo, hi = spec.replicas.minReplicas, spec.replicas.maxReplicas
    plan = step.plan
    assert lo <= plan.desired_replicas <= hi, f"desired {plan.desired_replicas} outside [{lo}, {hi}]"
    assert plan.scale_to is None or lo <= plan.scale_to <= hi, f"scale_to {plan.scale_to} outside bounds"


def check_pool(spec: ReadWriteWorkloadSpec, step: Step) -> None:
    plan, obs = step.plan, step.obs
    assert plan.read_pool, "the read pool is never empty"
    by_name = {r.name: r for r in obs.replicas}
    assert set(plan.read_pool) <= {PRIMARY, *by_name}
    outage = len(obs.unknown_signals()) == 4
    for name in plan.read_pool:
        if name == PRIMARY:
            continue
        r = by_name[name]
        assert r.ready, f"{name} is not ready but serves reads"
        if spec.consistency is Consistency.STRONG:
            assert r.synchronous and (r.lag.value == 0 or (outage and r.lag.value is None))
        elif r.lag.value is None:
            assert outage, f"{name} with unknown lag serves reads outside an outage"
        else:
            assert r.lag.value <= spec.objectives.max_lag_s, f"{name} lags {r.lag.value}s and serves reads"
    assert plan.pool_fallback == (plan.read_pool == (PRIMARY,) and spec.consistency is not Consistency.STRONG)
    # Nothing being drained or removed serves reads.
    assert not set(plan.draining) & set(plan.read_pool), "a draining replica serves reads"
    if plan.scale_to is not None and plan.scale_to < plan.current_replicas:
        leaving = {r.name for r in obs.replicas if r.rank >= plan.scale_to}
        assert not leaving & set(plan.read_pool), "a replica being removed serves reads"


def check_write_bound(spec: ReadWriteWorkloadSpec, step: Step, tick: TickInput) -> None:
    """No scale-up while write-bound: write p99 breached, read p99 under APPROACH x objective."""
    if step.obs.unknown_signals() or tick.write_level is None or tick.read_level is None:
        return
    tol = spec.behavior.tolerance
    # margins: p99 goes through seconds and back
    if tick.write_level > 1 + tol + 1e-9 and tick.read_level < APPROACH - 1e-9:
        current = step.obs.current_replicas
        assert step.plan.desired_replicas <= current, "desired above current while write-bound"
        assert step.plan.scale_to is None or step.plan.scale_to <= current, "scaled up while write-bound"


def check_unknown(step: Step) -> None:
    """No scale-down on unknown metrics (the count starts and stays within the bounds here)."""
    if step.obs.unknown_signals():
        current = step.obs.current_replicas
        assert step.plan.desired_replicas >= current, "desired below current on unknown metrics"
        assert step.plan.scale_to is None or step.plan.scale_to >= current, "scaled down on unknown metrics"
        assert not step.plan.draining, "drains on unknown metrics"


def check_reports(spec: ReadWriteWorkloadSpec, step: Step) -> None:
    plan = step.plan
    if spec.mode is Mode.RECOMMEND:
        assert plan.scale_to is None and plan.draining == (), "Recommend mode asked for an action"
    if plan.scale_to is not None or plan.draining:
        assert any(r.rule in {Rule.SCALE, Rule.DRAINING} for r in plan.reasons), "acts without a reason"
    for reason in plan.reasons:
        assert_readable(reason.message)
    for c in plan.conditions:
        assert_readable(c.message)
        assert CONDITION_REASON.fullmatch(c.reason), f"{c.reason!r} is not a Kubernetes condition reason"
    status = json.loads(json.dumps(plan.memory.to_status(), allow_nan=False))
    assert Memory.from_status(status) == plan.memory, "memory does not round-trip through status"


def check_no_reversal(spec: ReadWriteWorkloadSpec, steps: list[Step]) -> None:
    """After a scale-up at t, no scale-down before t + the scale-down window, and vice versa."""
    windows = {
        1: spec.behavior.scaleUp.stabilizationWindowSeconds,
        -1: spec.behavior.scaleDown.stabilizationWindowSeconds,
    }
    last: tuple[float, int] | None = None  # (time, direction) of the last scale
    for step in steps:
        plan = step.plan
        if plan.scale_to is None or plan.scale_to == plan.current_replicas:
            continue
        direction = 1 if plan.scale_to > plan.current_replicas else -1
        if last is not None and direction != last[1]:
            assert step.t - last[0] >= windows[direction], (
                f"scaled {'up' if direction > 0 else 'down'} at {step.t}, {step.t - last[0]}s after "
                f"scaling the other way (window {windows[direction]}s)"
            )
        last = (step.t, direction)


@SETTINGS
@given(scenarios)
def test_properties_hold_on_every_tick(scenario: tuple[Any, int, list[TickInput]]) -> None:
    spec, start, inputs = scenario
    steps = simulate(spec, start_within(spec, start), inputs)
    for step, tick in zip(steps, inputs, strict=True):
        check_bounds(spec, step)
        check_pool(spec, step)
        check_write_bound(spec, step, tick)
        check_unknown(step)
        check_reports(spec, step)
    check_no_reversal(spec, steps)


# --- write-bound runs with read pressure, built on purpose -----------------------------------------
# Mixed runs reach a write-bound tick on which the capacity model asks for more replicas only a few
# times in 200 examples. These runs are write-bound with read pressure on every tick: write p99
# breached (over objective x (1 + tolerance)), read p99 under 0.8 x its objective (so reads cannot
# be rising), and read QPS beyond the tolerance band above what the running replicas carry at
# targetReadQPSPerReplica. Without the refusal every one of them scales up on its first tick.


@dataclass(frozen=True)
class WriteBound:
    spec: ReadWriteWorkloadSpec
    start: int
    # per tick: (read QPS per replica / target, read level, write level, write QPS)
    ticks: list[tuple[float, float, float, float]]


@st.composite
def write_bound_runs(draw: st.DrawFn) -> WriteBound:
    tolerance = draw(st.sampled_from([0.0, 0.1, 0.25]))
    hi = draw(st.integers(2, 8))
    lo = draw(st.integers(0, hi - 1))
    start = draw(st.integers(max(lo, 1), hi - 1))  # room to scale up
    pooler: dict[str, Any] = draw(
        st.sampled_from([{"kind": "None"}, {"kind": "EndpointSlice", "readService": "db-read"}])
    )
    spec = make_spec(
        replicas={
            "minReplicas": lo,
            "maxReplicas": hi,
            "targetReadQPSPerReplica": draw(st.sampled_from([50.0, 200.0, 1000.0])),
        },
        consistency=draw(st.sampled_from(["eventual", "bounded"])),
        pooler=pooler,
        behavior={
            "tolerance": tolerance,
            "scaleUp": {"stabilizationWindowSeconds": 0, "maxStep": draw(st.integers(1, 4))},
            "scaleDown": {
                "stabilizationWindowSeconds": draw(st.sampled_from([0, 300])),
                "maxStep": draw(st.integers(1, 3)),
            },
            "trend": {"forecastSeconds": draw(st.sampled_from([0, 120]))},
        },
    )
    tick = st.tuples(
        # read load per running replica, in units of the target: beyond the band, up to 10x
        st.floats(1.0 + tolerance + 0.01, 10.0),
        st.one_of(st.sampled_from([0.0, 0.3, 0.5, 0.79]), st.floats(0.0, 0.79)),
        st.one_of(
            st.sampled_from([1.0 + tolerance + 0.01, 2.0, 10.0]), st.floats(1.0 + tolerance + 0.01, 10.0)
        ),
        st.one_of(st.sampled_from([1.0, 100.0]), st.floats(0.001, 5000.0)),
    )
    return WriteBound(spec, start, draw(st.lists(tick, min_size=1, max_size=12)))


def simulate_write_bound(run: WriteBound) -> list[Step]:
    spec, o = run.spec, run.spec.objectives
    target = spec.replicas.targetReadQPSPerReplica
    assert target is not None
    memory, current, steps = Memory(), run.start, []
    for i, (load, read_level, write_level, write_qps) in enumerate(run.ticks):
        obs = make_obs(
            current=current,
            read_qps=load * target * current,
            write_qps=write_qps,
            read_p99=read_level * o.read_latency_s,
            write_p99=write_level * o.write_latency_s,
        )
        plan = decide(spec, obs, memory, i * STEP)
        steps.append(Step(i * STEP, obs, plan))
        memory = plan.memory
        if plan.scale_to is not None:
            current = plan.scale_to
    return steps


@SETTINGS
@given(write_bound_runs())
def test_write_bound_with_read_pressure_never_scales_up(run: WriteBound) -> None:
    steps = simulate_write_bound(run)
    for step, (_, read_level, write_level, _) in zip(steps, run.ticks, strict=True):
        tick = TickInput(None, None, read_level, write_level, (0.1,), -1, False, None)
        check_write_bound(run.spec, step, tick)
        check_bounds(run.spec, step)
        assert step.plan.condition(ConditionType.SCALING_LIMITED).reason == "WriteBottleneck"


@pytest.mark.parametrize(
    ("check", "step_change"),
    [
        ("bounds", {"desired_replicas": 99}),
        ("pool", {"read_pool": ()}),
        ("pool", {"read_pool": ("db-replica-1",)}),
        ("unknown", {"scale_to": 1}),
        ("write_bound", {"scale_to": 3}),
        ("reports", {"reasons": (), "scale_to": 3}),
    ],
)
def test_the_checks_catch_what_they_guard(check: str, step_change: dict[str, Any]) -> None:
    """Each check fails on a plan that breaks its property: the properties are not vacuous."""
    spec = make_spec(replicas={"minReplicas": 1, "maxReplicas": 4})
    tick = TickInput(None, 10.0, 0.2, 3.0, (0.1, 9.0), -1, False, None)
    if check == "write_bound":
        tick = TickInput(1000.0, 10.0, 0.2, 3.0, (0.1, 9.0), -1, False, None)
    step = simulate(spec, 2, [tick])[0]
    broken = Step(step.t, step.obs, dataclasses.replace(step.plan, **step_change))
    checks: dict[str, Callable[[], None]] = {
        "bounds": lambda: check_bounds(spec, broken),
        "pool": lambda: check_pool(spec, broken),
        "unknown": lambda: check_unknown(broken),
        "write_bound": lambda: check_write_bound(spec, broken, tick),
        "reports": lambda: check_reports(spec, broken),
    }
    with pytest.raises(AssertionError):
        checks[check]()


def test_the_reversal_check_catches_a_flap() -> None:
    spec = make_spec(behavior={"scaleDown": {"stabilizationWindowSeconds": 300, "maxStep": 1}})
    step = simulate(spec, 2, [TickInput(1.0, 1.0, 0.6, 0.5, (0.1,), -1, False, None)])[0]
    up = Step(0.0, step.obs, dataclasses.replace(step.plan, current_replicas=2, scale_to=3))
    down = Step(60.0, step.obs, dataclasses.replace(step.plan, current_replicas=3, scale_to=2))
    with pytest.raises(AssertionError, match="window 300s"):
        check_no_reversal(spec, [up, down])
    check_no_reversal(spec, [up, Step(300.0, down.obs, down.plan)])


@SETTINGS
@given(specs(), ticks_strategy)
def test_first_tick_never_empties_the_pool_of_replicas_that_qualify(
    spec: ReadWriteWorkloadSpec, tick: TickInput
) -> None:
    """Starting the operator (no memory) keeps every replica that qualifies to serve."""
    if spec.consistency is Consistency.STRONG:
        return
    current = spec.replicas.maxReplicas
    obs = observe(spec, tick, current)
    plan = decide(spec, obs, Memory(), 0.0)
    qualifying = {
        r.name
        for r in obs.replicas
        if r.ready and r.lag.value is not None and r.lag.value <= spec.objectives.max_lag_s
    }
    going = set(plan.draining)
    if plan.scale_to is not None and plan.scale_to < current:
        going |= {r.name for r in obs.replicas if r.rank >= plan.scale_to}
    assert qualifying - going <= set(plan.read_pool)
