"""No overshoot when replicas turn ready (issue 10, item 7), from docs/decisions.md.

What the docs say, and these tests hold the core to:
- the latency step waits while replicas asked for are starting (not ready, or ready and never in
  the pool yet) and for one latency window (max(2 x intervalSeconds, 60 s)) after a replica
  joined the read pool: the p99 read then describes the smaller pool before it;
- while replicas are starting, the forecast does not stack on them: only the present load adds
  replicas;
- the forecast's slope is the lower of the averages' gap / (300 s - 60 s) and the fast average's
  own rate over the last tick, so a jump that is over is not extrapolated.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from tests.unit.builders import (
    READ_OBJECTIVE,
    deep_merge,
    make_obs,
    no_stabilization,
    replica,
    replica_name,
)

from rwscaler.core.decide import decide
from rwscaler.core.memory import Ewma, Memory, ReplicaMemory
from rwscaler.core.observation import Observation
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.core.trends import climb_rate, slope, update_ewma

NOW = 100_000.0
TAUS = (60.0, 300.0)  # docs/decisions.md: read QPS averages, time constants 60 s and 300 s


def spec(interval: int = 15, forecast: int = 0, **overrides: Any) -> ReadWriteWorkloadSpec:
    base = {
        "replicas": {"targetReadQPSPerReplica": 800.0, "maxReplicas": 20},
        "behavior": {"intervalSeconds": interval, "tolerance": 0.1, "trend": {"forecastSeconds": forecast}},
    }
    return no_stabilization(**deep_merge(base, overrides))


def memory(in_pool: int, pool_grew_at: float | None = None, **fields: Any) -> Memory:
    pool = {replica_name(i): ReplicaMemory(in_pool=True) for i in range(in_pool)}
    return Memory(last_tick=NOW - 15, ewma_time=NOW - 15, pool=pool, pool_grew_at=pool_grew_at, **fields)


# 3,000 reads/s on 4 replicas of 800/s is 0.94 of their capacity: the capacity model holds 4,
# so a 5th replica can only come from the latency step.
def breach(**kw: Any) -> Observation:
    return make_obs(current=4, read_qps=3000.0, read_p99=1.5 * READ_OBJECTIVE, **kw)


@pytest.mark.parametrize(
    ("interval", "since_join", "expected"),
    [
        (15, None, 5),  # the pool has not changed: the breach is about this pool
        (15, 0.0, 4),  # a replica joins this tick
        (15, 15.0, 4),
        (15, 45.0, 4),
        (15, 60.0, 5),  # a whole 60 s window has passed
        (15, 120.0, 5),
        (60, 60.0, 4),  # window 2 x 60 s = 120 s
        (60, 120.0, 5),
    ],
)
def test_the_latency_step_waits_one_window_after_a_replica_joins(
    interval: int, since_join: float | None, expected: int
) -> None:
    # since_join 0: db-replica-3 is ready and caught up but not in the pool: it joins now.
    grew_at = None if since_join is None else NOW - since_join
    mem = memory(3) if since_join == 0.0 else memory(4, grew_at)
    plan = decide(spec(interval), breach(), mem, NOW)
    assert plan.desired_replicas == expected


@pytest.mark.parametrize(
    ("case", "last", "expected"),
    [
        ("all four serve", replica(3), 5),
        ("the 4th is not ready", replica(3, ready=False), 4),
        ("the 4th is ready but still warming up (lag not caught up)", replica(3, lag=4.0), 4),
    ],
)
def test_the_latency_step_waits_for_starting_replicas(case: str, last: Any, expected: int) -> None:
    replicas = [replica(0), replica(1), replica(2), last]
    pool = memory(4) if expected == 5 else memory(3)
    plan = decide(spec(), breach(replicas=replicas), pool, NOW)
    assert plan.desired_replicas == expected, case


@pytest.mark.parametrize(("starting", "more_than_present"), [(False, True), (True, False)])
def test_the_forecast_does_not_stack_on_starting_replicas(starting: bool, more_than_present: bool) -> None:
    """Reads climbing fast at 6,100/s on 8 replicas (6,400/s): the forecast asks for more, but
    not while a replica asked for is still starting."""
    replicas = [replica(i, ready=not (starting and i == 7)) for i in range(8)]
    climbing = Ewma(fast=5000.0, slow=3000.0, since=0.0)
    mem = memory(7 if starting else 8, read_qps=climbing)
    obs = make_obs(current=8, read_qps=6100.0, read_p99=0.6 * READ_OBJECTIVE, replicas=replicas)
    plan = decide(spec(forecast=120), obs, mem, NOW)
    assert (plan.desired_replicas > 8) is more_than_present


def _feed(values: list[float], dt: float = 15.0) -> tuple[Ewma | None, Ewma | None]:
    before: Ewma | None = None
    after: Ewma | None = None
    for i, v in enumerate(values):
        before, after = after, update_ewma(after, v, dt if after is not None else 0.0, i * dt, TAUS)
    return before, after


def test_a_jump_that_is_over_is_not_extrapolated() -> None:
    """1,500/s, then 6,000/s for 3.5 minutes: the averages' gap still says ~9/s (a 120 s forecast
    of +1,100/s), the fast average has nearly stopped moving."""
    before, after = _feed([1500.0] * 40 + [6000.0] * 14)
    assert slope(after, TAUS) * 120 > 1000.0  # what the forecast used to add
    assert climb_rate(before, after, 15.0, TAUS) * 120 < 500.0


def test_a_ramp_is_still_extrapolated() -> None:
    """2/s every second for 20 minutes: both views see a slope close to 2/s."""
    before, after = _feed([1000.0 + 2.0 * 15.0 * i for i in range(80)])
    assert climb_rate(before, after, 15.0, TAUS) == pytest.approx(2.0, rel=0.15)


def test_a_flash_spike_ends_at_what_the_load_needs() -> None:
    """The issue's flash spike in small: reads step from 1,500/s to 6,000/s on 2 replicas; a
    replica is ready 120 s after it is asked for, and read p99 (read one tick later) breaches
    while the replicas in the pool carry more than 900/s each. The count should end at
    ceil(6000 / 800) = 8, as the keda-qps baseline and the oracle do, not at 9 or 10."""
    s = spec(forecast=120, behavior={"scaleUp": {"maxStep": 2}})
    asked: dict[int, float] = {0: -1e9, 1: -1e9}
    state: dict[str, Any] = {"p99": 0.4 * READ_OBJECTIVE, "memory": Memory()}
    counts: list[int] = []
    current = 2
    for k in range(120):
        t = NOW + 15.0 * k
        reads = 1500.0 if k < 20 else 6000.0
        for i in range(current):
            asked.setdefault(i, t)
        replicas = [replica(i, ready=t - asked[i] >= 120.0) for i in range(current)]
        obs: Observation = make_obs(current=current, read_qps=reads, read_p99=state["p99"], replicas=replicas)
        plan = decide(s, obs, state["memory"], t)
        state["memory"] = plan.memory
        serving = max(len(plan.read_pool), 1)
        state["p99"] = (3.0 if reads / serving > 900.0 else 0.4) * READ_OBJECTIVE
        current = plan.scale_to if plan.scale_to is not None else current
        counts.append(current)
    assert max(counts) == math.ceil(6000 / 800)
    assert counts[-1] == 8


@pytest.mark.parametrize(
    ("case", "last_pool", "expected"),
    [
        ("the same four as last tick", (0, 1, 2, 3), 5),
        ("db-replica-3 was out (drained for a scale-in that was called off) and is back", (0, 1, 2), 4),
        ("a status from before the pool was kept: the replicas' pool memory decides", None, 5),
    ],
)
def test_a_replica_back_from_a_drain_counts_as_joining(
    case: str, last_pool: tuple[int, ...] | None, expected: int
) -> None:
    """Its pool memory says in_pool all along; the pool as last decided says it was out."""
    previous = None if last_pool is None else tuple(replica_name(i) for i in last_pool)
    mem = replace(memory(4), read_pool=previous)
    plan = decide(spec(), breach(), mem, NOW)
    assert plan.desired_replicas == expected, case
