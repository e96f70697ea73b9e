"""The read pool (read_pool.py and the drain in decide.py), transition by transition.

Objective maxReplicationLag 5 s; re-entry under 5 s x reentryLagRatio (0.5) = 2.5 s for
reentrySeconds (30 s); ticks every 15 s.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from tests.unit.builders import (
    PRIMARY,
    READ_OBJECTIVE,
    assert_readable,
    cond,
    is_true,
    make_obs,
    make_spec,
    replica,
    replica_name,
    rules,
)

from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory, ReplicaMemory
from rwscaler.core.observation import Observation, ReplicaObservation, Signal, UnknownReason
from rwscaler.core.plan import Plan, Reason
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.core.vocabulary import ConditionType as CT
from rwscaler.core.vocabulary import Rule, Status

R0, R1, R2, R3 = (replica_name(i) for i in range(4))


def pool_spec(**overrides: Any) -> ReadWriteWorkloadSpec:
    base = {"pooler": {"kind": "EndpointSlice", "readService": "db-read"}}
    return make_spec(**{**base, **overrides})


class Driver:
    """decide, tick after tick, with the memory carried and the time advancing by `step`."""

    def __init__(self, spec: ReadWriteWorkloadSpec, step: float = 15.0, start: float = 0.0) -> None:
        self.spec, self.step = spec, step
        self.memory = Memory()
        self.now = start
        self.plans: list[Plan] = []

    def tick(self, obs: Observation) -> Plan:
        plan = decide(self.spec, obs, self.memory, self.now)
        self.memory = plan.memory
        self.plans.append(plan)
        self.now += self.step
        return plan

    def replicas(self, *reps: ReplicaObservation, **obs: Any) -> Plan:
        return self.tick(make_obs(current=obs.pop("current", len(reps)), replicas=reps, **obs))


# --- first tick ----------------------------------------------------------------------------------


def test_first_tick_takes_every_qualifying_replica() -> None:
    """Starting the operator does not empty the pool: no warm-up for replicas that qualify to stay."""
    d = Driver(pool_spec())
    plan = d.replicas(replica(0, 0.1), replica(1, 4.0), replica(2, 5.0))
    assert plan.read_pool == (R0, R1, R2)
    assert not plan.pool_fallback


def test_first_tick_leaves_out_replicas_that_do_not_qualify() -> None:
    d = Driver(pool_spec())
    plan = d.replicas(replica(0, 0.1), replica(1, 5.01), replica(2, 0.1, ready=False), replica(3, None))
    assert plan.read_pool == (R0,)


# --- leaving -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lag", "stays"), [(4.99, True), (5.0, True), (5.001, False), (60.0, False)])
def test_leaves_at_once_over_the_lag_objective(lag: float, stays: bool) -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    plan = d.replicas(replica(0, 0.1), replica(1, lag))
    assert (R1 in plan.read_pool) is stays
    assert R0 in plan.read_pool
    if not stays:
        left = next(r for r in plan.reasons if r.rule is Rule.REPLICA_LEFT_POOL)
        assert R1 in left.message and "lag" in left.message
        assert_readable(left.message)
        lag_high = cond(plan, CT.REPLICATION_LAG_HIGH)
        assert lag_high.status is Status.TRUE and lag_high.reason == "ReplicasLagging"
        assert R1 in lag_high.message
    else:
        assert not is_true(plan, CT.REPLICATION_LAG_HIGH)


def test_leaves_at_once_when_not_ready() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    plan = d.replicas(replica(0, 0.1), replica(1, 0.1, ready=False))
    assert plan.read_pool == (R0,)
    assert "not ready" in next(r.message for r in plan.reasons if r.rule is Rule.REPLICA_LEFT_POOL)


def test_missing_lag_for_one_replica_removes_only_it() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1), replica(2, 0.1))
    plan = d.replicas(replica(0, 0.1), replica(1, None), replica(2, 0.1))
    assert plan.read_pool == (R0, R2)
    assert not plan.pool_fallback
    left = next(r for r in plan.reasons if r.rule is Rule.REPLICA_LEFT_POOL)
    assert R1 in left.message and "unknown" in left.message
    # The workload's own signals are known: metrics stay available, with a note about the lag.
    available = cond(plan, CT.METRICS_AVAILABLE)
    assert available.status is Status.TRUE
    assert R1 in available.message
    assert plan.scale_to is None


# --- re-entering (hysteresis) --------------------------------------------------------------------


def test_reenters_only_after_lag_stays_under_the_reentry_threshold_for_reentry_seconds() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))  # t=0
    assert R1 not in d.replicas(replica(0, 0.1), replica(1, 8.0)).read_pool  # t=15: leaves
    # Under the objective but not under 2.5 s: stays out, however long.
    for _ in range(6):
        assert R1 not in d.replicas(replica(0, 0.1), replica(1, 3.0)).read_pool
    # Under 2.5 s from t0; in after 30 s (two more ticks), not before.
    t0_plan = d.replicas(replica(0, 0.1), replica(1, 2.0))
    assert R1 not in t0_plan.read_pool
    assert R1 not in d.replicas(replica(0, 0.1), replica(1, 1.0)).read_pool  # t0 + 15
    joined = d.replicas(replica(0, 0.1), replica(1, 1.0))  # t0 + 30
    assert joined.read_pool == (R0, R1)
    message = next(r.message for r in joined.reasons if r.rule is Rule.REPLICA_JOINED_POOL)
    assert R1 in message
    assert_readable(message)


def test_reentry_clock_restarts_when_lag_bounces() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    d.replicas(replica(0, 0.1), replica(1, 9.0))  # leaves
    d.replicas(replica(0, 0.1), replica(1, 1.0))  # under the threshold: clock starts
    d.replicas(replica(0, 0.1), replica(1, 3.0))  # back over 2.5 s: clock resets
    d.replicas(replica(0, 0.1), replica(1, 1.0))  # starts again
    assert R1 not in d.replicas(replica(0, 0.1), replica(1, 1.0)).read_pool  # only 15 s
    assert R1 in d.replicas(replica(0, 0.1), replica(1, 1.0)).read_pool  # 30 s


@pytest.mark.parametrize(("ratio", "seconds"), [(0.2, 0), (0.8, 60)])
def test_reentry_follows_the_spec(ratio: float, seconds: int) -> None:
    spec = pool_spec(behavior={"readPool": {"reentryLagRatio": ratio, "reentrySeconds": seconds}})
    d = Driver(spec)
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    d.replicas(replica(0, 0.1), replica(1, 9.0))
    threshold = 5.0 * ratio
    # Just over the threshold never re-enters.
    for _ in range(6):
        assert R1 not in d.replicas(replica(0, 0.1), replica(1, threshold + 0.01)).read_pool
    inside = [R1 in d.replicas(replica(0, 0.1), replica(1, threshold - 0.01)).read_pool for _ in range(6)]
    first_in = inside.index(True)
    assert first_in * 15 >= seconds and (first_in - 1) * 15 < seconds
    assert all(inside[first_in:])


# --- warm-up gate for a new replica -------------------------------------------------------------


def test_new_replica_joins_only_once_caught_up() -> None:
    """Warm-up gate: a new replica joins when ready and under objective x reentryLagRatio (2.5 s);
    under the objective alone (4 s) is enough to stay, not to join. Having never flapped, it does not
    wait out the re-entry hysteresis."""
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    plans = [d.replicas(replica(0, 0.1), replica(1, 0.1), replica(2, lag)) for lag in (40.0, 12.0, 4.0, 2.6)]
    assert all(R2 not in p.read_pool for p in plans)
    assert all(not p.pool_fallback for p in plans)
    joined = d.replicas(replica(0, 0.1), replica(1, 0.1), replica(2, 2.4))
    assert joined.read_pool == (R0, R1, R2)
    message = next(r.message for r in joined.reasons if r.rule is Rule.REPLICA_JOINED_POOL)
    assert R2 in message
    assert_readable(message)


@pytest.mark.parametrize(
    ("lag", "joins"),
    [(math.nextafter(2.5, 0.0), True), (2.5, False), (math.nextafter(2.5, 5.0), False)],
)
def test_the_warm_up_gate_is_strictly_under_the_reentry_threshold(lag: float, joins: bool) -> None:
    """docs/decisions.md: a new replica joins once its lag is under 5 s x 0.5 = 2.5 s."""
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    plan = d.replicas(replica(0, 0.1), replica(1, 0.1), replica(2, lag))
    assert (R2 in plan.read_pool) is joins


def test_pool_changes_in_words() -> None:
    """The reasons status, events and `explain` show when a replica leaves or joins."""
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    left = d.replicas(replica(0, 0.1), replica(1, 9.0))
    leaving = next(r for r in left.reasons if r.rule is Rule.REPLICA_LEFT_POOL)
    assert leaving.message == f"{R1} left the read pool: lag 9s over 5s"
    assert leaving.inputs == (("replica", R1), ("ready", "True"), ("lagSeconds", 9.0))
    down = d.replicas(replica(0, 0.1, ready=False), replica(1, 9.0))
    gone = next(r for r in down.reasons if r.rule is Rule.REPLICA_LEFT_POOL)
    assert gone.message == f"{R0} left the read pool: not ready"
    assert gone.inputs == (("replica", R0), ("ready", "False"), ("lagSeconds", 0.1))


def test_joins_in_words() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))  # t = 0
    new = d.replicas(replica(0, 0.1), replica(1, 0.1), replica(2, 0.1))  # t = 15: a new replica
    joined = next(r for r in new.reasons if r.rule is Rule.REPLICA_JOINED_POOL)
    assert joined.message == f"{R2} joined the read pool: lag 100ms under 2.5s (caught up)"
    assert joined.inputs == (("replica", R2), ("ready", "True"), ("lagSeconds", 0.1))
    d.replicas(replica(0, 0.1), replica(1, 0.1), replica(2, 9.0))  # t = 30: it leaves
    plans = [d.replicas(replica(0, 0.1), replica(1, 0.1), replica(2, 0.1)) for _ in range(3)]
    back = next(r for p in plans for r in p.reasons if r.rule is Rule.REPLICA_JOINED_POOL)
    assert back.message == f"{R2} joined the read pool: lag 100ms under 2.5s for 30s"


def test_a_missing_lag_in_words() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    plan = d.replicas(replica(0, 0.1), replica(1, None))
    left = next(r for r in plan.reasons if r.rule is Rule.REPLICA_LEFT_POOL)
    assert left.message == f"{R1} left the read pool: its lag is unknown (EmptyResult)"


def test_the_fallback_and_the_held_pool_in_words() -> None:
    d = Driver(pool_spec())
    fallback = d.replicas(replica(0, 9.0), replica(1, None))
    why = next(r for r in fallback.reasons if r.rule is Rule.POOL_FALLBACK)
    assert why.message == (
        f"no replica qualifies for the read pool (2 replicas, 1 lagging, 1 with unknown lag): "
        f"the primary {PRIMARY} serves reads"
    )
    assert why.inputs == (("replicas", 2), ("lagging", 1))
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    held = d.replicas(replica(0, None), replica(1, None), **OUTAGE)
    said = next(r for r in held.reasons if r.rule is Rule.METRICS_UNKNOWN and "lag" in r.message)
    assert (
        said.message == f"replication lag could not be queried: read pool held as last decided ({R0}, {R1})"
    )
    d = Driver(pool_spec())
    d.replicas(replica(0, 9.0), replica(1, 9.0))  # nothing in the pool: the primary serves
    empty = d.replicas(replica(0, None), replica(1, None), **OUTAGE)
    said = next(r for r in empty.reasons if r.rule is Rule.METRICS_UNKNOWN and "lag" in r.message)
    assert (
        said.message == "replication lag could not be queried: read pool held as last decided (the primary)"
    )


def test_a_warming_replica_is_not_capacity_to_replace() -> None:
    """docs/decisions.md: the capacity model adds the replicas that served reads and are now out for
    lag; replicas still warming up (never in the pool yet) do not count."""
    spec = make_spec(
        replicas={"targetReadQPSPerReplica": 200.0, "maxReplicas": 20},
        behavior={"scaleUp": {"stabilizationWindowSeconds": 0, "maxStep": 10}},
    )
    d = Driver(spec)
    d.replicas(replica(0, 0.1), replica(1, 0.1), read_qps=400.0)
    plan = d.replicas(replica(0, 0.1), replica(1, 0.1), replica(2, 9.0), read_qps=2000.0)
    model = next(r for r in plan.reasons if r.rule is Rule.CAPACITY_MODEL)
    assert dict(model.inputs)["lagging"] == 0
    assert plan.desired_replicas == 10


def test_new_replica_that_lags_after_joining_needs_the_full_hysteresis() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1))
    assert R1 in d.replicas(replica(0, 0.1), replica(1, 0.5)).read_pool
    assert R1 not in d.replicas(replica(0, 0.1), replica(1, 7.0)).read_pool
    back = [R1 in d.replicas(replica(0, 0.1), replica(1, 0.5)).read_pool for _ in range(3)]
    assert back == [False, False, True]


def test_new_replica_not_ready_stays_out() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1))
    for _ in range(5):
        assert R1 not in d.replicas(replica(0, 0.1), replica(1, 0.0, ready=False)).read_pool
    assert R1 in d.replicas(replica(0, 0.1), replica(1, 0.0)).read_pool


# --- a metrics outage holds the pool -------------------------------------------------------------

OUTAGE: dict[str, Any] = {"read_qps": None, "write_qps": None, "read_p99": None, "write_p99": None}


def test_outage_holds_the_pool_as_last_decided() -> None:
    """No signal and no lag known: unknown means hold, not "everything lags" (no primary fallback)."""
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1), replica(2, 9.0))
    held = d.replicas(replica(0, None), replica(1, None), replica(2, None), **OUTAGE)
    assert held.read_pool == (R0, R1)
    assert not held.pool_fallback
    assert Rule.METRICS_UNKNOWN in rules(held)
    assert held.scale_to is None


def test_an_outage_keeps_each_replicas_pool_memory() -> None:
    """A replica that left for lag before the outage still owes the full hysteresis after it; the
    ones in the pool stay in; nothing is forgotten."""
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))  # t = 0: both in
    d.replicas(replica(0, 0.1), replica(1, 9.0))  # t = 15: db-replica-1 leaves for lag
    held = d.replicas(replica(0, None), replica(1, None), **OUTAGE)  # t = 30
    assert held.read_pool == (R0,)
    assert held.memory.pool[R0].in_pool
    assert held.memory.pool[R1].left_pool and not held.memory.pool[R1].in_pool
    after = d.replicas(replica(0, 0.1), replica(1, 0.1))  # t = 45: caught up, clock starts
    assert after.read_pool == (R0,), "it left the pool: re-entry waits reentrySeconds (30 s)"
    assert d.replicas(replica(0, 0.1), replica(1, 0.1)).read_pool == (R0,)  # t = 60: 15 s
    assert d.replicas(replica(0, 0.1), replica(1, 0.1)).read_pool == (R0, R1)  # t = 75: 30 s


def test_outage_still_removes_a_replica_that_stops_being_ready() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    plan = d.replicas(replica(0, None), replica(1, None, ready=False), **OUTAGE)
    assert plan.read_pool == (R0,)
    assert not plan.memory.pool[R1].in_pool, "remembered as out: back, it must qualify to rejoin"


def test_a_pod_that_appears_during_an_outage_does_not_serve_and_is_remembered_as_new() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    plan = d.replicas(replica(0, None), replica(1, None), replica(2, None), **OUTAGE)
    assert plan.read_pool == (R0, R1)
    assert plan.memory.pool[R2] == ReplicaMemory()


def test_lag_unknown_while_other_signals_are_known_is_not_an_outage() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    plan = d.replicas(replica(0, None), replica(1, None))
    assert plan.read_pool == (PRIMARY,)
    assert plan.pool_fallback


# --- never empty: the primary as fallback --------------------------------------------------------


@pytest.mark.parametrize(
    "reps",
    [
        pytest.param((replica(0, 9.0), replica(1, 7.0)), id="all-lagging"),
        pytest.param((replica(0, 0.1, ready=False), replica(1, 9.0)), id="not-ready-and-lagging"),
    ],
)
def test_no_qualifying_replica_falls_back_to_the_primary(reps: tuple[ReplicaObservation, ...]) -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    plan = d.replicas(*reps)
    assert plan.read_pool == (PRIMARY,)
    assert plan.pool_fallback
    lag_high = cond(plan, CT.REPLICATION_LAG_HIGH)
    assert lag_high.status is Status.TRUE
    assert lag_high.reason == "ReadsOnPrimary"
    assert PRIMARY in lag_high.message
    assert Rule.POOL_FALLBACK in rules(plan)


def test_every_lag_unknown_falls_back_without_saying_the_lag_is_high() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1), replica(1, 0.1))
    plan = d.replicas(replica(0, None), replica(1, None))
    assert plan.read_pool == (PRIMARY,)
    assert plan.pool_fallback
    lag_high = cond(plan, CT.REPLICATION_LAG_HIGH)
    assert (lag_high.status, lag_high.reason) == (Status.UNKNOWN, "LagUnknown")
    assert PRIMARY in lag_high.message and "EmptyResult" in lag_high.message


def test_fallback_on_the_first_tick_too() -> None:
    plan = Driver(pool_spec()).replicas(replica(0, 9.0))
    assert plan.read_pool == (PRIMARY,) and plan.pool_fallback


def test_no_replicas_at_all_reads_from_the_primary() -> None:
    spec = pool_spec(replicas={"minReplicas": 0})
    plan = Driver(spec).tick(make_obs(current=0, replicas=()))
    assert plan.read_pool == (PRIMARY,)
    assert cond(plan, CT.REPLICATION_LAG_HIGH).reason == "NoReplicas"
    assert cond(plan, CT.REPLICATION_LAG_HIGH).status is Status.FALSE


def test_fallback_ends_when_a_replica_recovers() -> None:
    d = Driver(pool_spec())
    d.replicas(replica(0, 0.1))
    assert d.replicas(replica(0, 9.0)).pool_fallback
    plans = [d.replicas(replica(0, 0.5)) for _ in range(3)]
    assert [p.read_pool for p in plans] == [(PRIMARY,), (PRIMARY,), (R0,)]
    assert not is_true(plans[-1], CT.REPLICATION_LAG_HIGH)


def test_max_lag_is_reported() -> None:
    plan = Driver(pool_spec()).replicas(replica(0, 0.5), replica(1, 2.5), replica(2, None))
    assert plan.max_lag_s == pytest.approx(2.5)


# --- drain before scale-in -----------------------------------------------------------------------

QUIET = {"read_p99": 0.1 * READ_OBJECTIVE}  # reads far under the objective: one replica fewer


def drain_spec(timeout: int = 60, **overrides: Any) -> ReadWriteWorkloadSpec:
    return make_spec(
        pooler={"kind": "EndpointSlice", "readService": "db-read", "drainTimeoutSeconds": timeout},
        behavior={"scaleDown": {"stabilizationWindowSeconds": 0, "maxStep": 1}},
        **overrides,
    )


def fleet(n: int, connections: dict[int, int | None] | None = None) -> tuple[ReplicaObservation, ...]:
    conns = connections or {}
    return tuple(replica(i, 0.1, connections=conns.get(i, 5)) for i in range(n))


def test_highest_ordinal_leaves_the_pool_and_drains_before_the_scale_in() -> None:
    d = Driver(drain_spec())
    first = d.replicas(*fleet(3), **QUIET)
    assert first.scale_to is None, "a drain starts: nothing is removed yet"
    assert first.draining == (R2,)
    assert first.read_pool == (R0, R1)
    assert first.desired_replicas == 2
    assert Rule.DRAINING in rules(first)
    # Connections still open: keep waiting.
    second = d.replicas(*fleet(3, {2: 3}), **QUIET)
    assert second.scale_to is None and second.draining == (R2,)
    assert R2 not in second.read_pool
    # Connections closed: now the StatefulSet may shrink.
    third = d.replicas(*fleet(3, {2: 0}), **QUIET)
    assert third.scale_to == 2
    assert R2 not in third.read_pool
    assert {Rule.DRAIN_COMPLETE, Rule.SCALE} <= rules(third)
    assert third.memory.drain is None


def test_drain_waits_a_tick_even_if_connections_are_already_zero() -> None:
    d = Driver(drain_spec())
    first = d.replicas(*fleet(3, {2: 0}), **QUIET)
    assert first.scale_to is None and first.draining == (R2,)
    assert d.replicas(*fleet(3, {2: 0}), **QUIET).scale_to == 2


def test_the_highest_ordinal_goes_even_when_a_lower_one_is_worse() -> None:
    d = Driver(drain_spec())
    reps = (replica(0, 4.0, connections=5), replica(1, 0.1, connections=5), replica(2, 0.0, connections=5))
    plan = d.replicas(*reps, **QUIET)
    assert plan.draining == (R2,)


@pytest.mark.parametrize(("connections", "timeout"), [(7, 60), (None, 60), (7, 30)])
def test_drain_timeout_ends_the_wait(connections: int | None, timeout: int) -> None:
    d = Driver(drain_spec(timeout=timeout))
    plans = [d.replicas(*fleet(3, {2: connections}), **QUIET) for _ in range(timeout // 15 + 2)]
    scaled = [i for i, p in enumerate(plans) if p.scale_to is not None]
    assert scaled, "the drain timeout must end the wait"
    first = scaled[0]
    assert first * 15 == timeout, "scale exactly when the timeout has passed, not before"
    assert all(p.scale_to is None and p.draining == (R2,) for p in plans[:first])
    assert plans[first].scale_to == 2
    assert "timeout" in next(r.message for r in plans[first].reasons if r.rule is Rule.DRAIN_COMPLETE)


def drain_message(plan: Plan) -> str:
    return next(r.message for r in plan.reasons if r.rule is Rule.DRAIN_COMPLETE)


def test_the_drain_timeout_counts_from_when_the_drain_started() -> None:
    """A drain that starts at t = 1000 s with connections open waits its 60 s from then."""
    d = Driver(drain_spec(timeout=60), start=1000.0)
    plans = [d.replicas(*fleet(3, {2: 7}), **QUIET) for _ in range(5)]
    assert [p.scale_to for p in plans] == [None, None, None, None, 2]
    assert all(p.draining == (R2,) for p in plans[:4])
    assert "drain timeout 60s passed" in drain_message(plans[4])


def test_a_drain_with_no_connection_left_ends_as_soon_as_any_time_has_passed() -> None:
    d = Driver(drain_spec(timeout=60), step=1.0)
    assert d.replicas(*fleet(3, {2: 0}), **QUIET).scale_to is None  # the tick the drain starts
    done = d.replicas(*fleet(3, {2: 0}), **QUIET)  # one second later
    assert done.scale_to == 2
    assert "no connection left" in drain_message(done)
    assert_readable(drain_message(done))


def test_a_scale_in_with_no_pod_left_to_drain_goes_at_once() -> None:
    """The StatefulSet says 3, but only pods 0 and 1 exist (pod 2 never came up): nothing routes
    to a pod that does not exist, so the scale-in needs no drain."""
    plan = Driver(drain_spec()).replicas(*fleet(2), current=3, **QUIET)
    assert plan.scale_to == 2
    assert plan.draining == ()
    assert "no replica pod left to drain" in drain_message(plan)
    assert_readable(drain_message(plan))


def the_reason(plan: Plan, rule: Rule) -> Reason:
    found = [r for r in plan.reasons if r.rule is rule]
    assert len(found) == 1, [r.message for r in plan.reasons]
    return found[0]


@pytest.mark.parametrize(("connections", "said"), [({2: 3}, "3"), ({2: None}, "unknown")])
def test_the_drain_says_what_it_waits_for_in_words(connections: dict[int, int | None], said: str) -> None:
    """What status, events and `explain` show, word for word (the reasons' text and inputs)."""
    d = Driver(drain_spec(timeout=60))
    first = d.replicas(*fleet(3, connections), **QUIET)
    waiting = d.replicas(*fleet(3, connections), **QUIET)
    draining = the_reason(waiting, Rule.DRAINING)
    assert draining.message == (
        f"draining {R2} before scaling down 3 -> 2: {said} server connection(s) open, 15s of 60s"
    )
    assert draining.inputs == (("openConnections", 3 if said == "3" else 0), ("waitedSeconds", 15.0))
    assert the_reason(first, Rule.DRAINING).message.endswith("open, 0ms of 60s")
    done = d.replicas(*fleet(3, {2: 0}), **QUIET)
    complete = the_reason(done, Rule.DRAIN_COMPLETE)
    assert complete.message == f"{R2} drained (no connection left) after 30s"
    assert complete.inputs == (("waitedSeconds", 30.0),)
    assert the_reason(done, Rule.SCALE).message == "scaling down 3 -> 2"


def test_two_drained_replicas_are_named_in_the_completion() -> None:
    spec = make_spec(
        pooler={"kind": "EndpointSlice", "readService": "db-read"},
        behavior={"scaleDown": {"stabilizationWindowSeconds": 0, "maxStep": 2}},
        replicas={"targetReadQPSPerReplica": 1000.0},
    )
    d = Driver(spec)
    started = d.replicas(*fleet(4), read_qps=1500.0)
    assert the_reason(started, Rule.DRAINING).message == (
        f"draining {R2}, {R3} before scaling down 4 -> 2: 10 server connection(s) open, 0ms of 60s"
    )
    done = d.replicas(*fleet(4, {2: 0, 3: 0}), read_qps=1500.0)
    assert (
        the_reason(done, Rule.DRAIN_COMPLETE).message == f"{R2}, {R3} drained (no connection left) after 15s"
    )


def test_nothing_to_drain_is_said_as_nothing() -> None:
    plan = Driver(drain_spec()).replicas(*fleet(2), current=3, **QUIET)
    complete = the_reason(plan, Rule.DRAIN_COMPLETE)
    assert complete.message == "nothing drained (no replica pod left to drain) after 0ms"
    assert complete.inputs == (("waitedSeconds", 0.0),)


def _two_step_spec() -> ReadWriteWorkloadSpec:
    return make_spec(
        pooler={"kind": "EndpointSlice", "readService": "db-read", "drainTimeoutSeconds": 60},
        behavior={"scaleDown": {"stabilizationWindowSeconds": 0, "maxStep": 2}},
        replicas={"targetReadQPSPerReplica": 1000.0},
    )


def test_two_step_scale_in_drains_both_highest_ordinals() -> None:
    d = Driver(_two_step_spec())
    plan = d.replicas(*fleet(4), read_qps=1500.0)  # needs 2 of 4
    assert plan.draining == (R2, R3)
    assert plan.read_pool == (R0, R1)
    assert d.replicas(*fleet(4, {2: 0, 3: 0}), read_qps=1500.0).scale_to == 2


def test_drain_is_cancelled_when_the_load_returns() -> None:
    d = Driver(drain_spec())
    assert d.replicas(*fleet(3), **QUIET).draining == (R2,)
    busy = d.replicas(*fleet(3), read_p99=0.6 * READ_OBJECTIVE)
    assert busy.draining == ()
    assert busy.scale_to is None
    assert busy.memory.drain is None
    # Back in the pool on the next tick (it never stopped qualifying).
    assert R2 in d.replicas(*fleet(3), read_p99=0.6 * READ_OBJECTIVE).read_pool


def test_without_a_pooler_the_scale_in_is_immediate() -> None:
    spec = make_spec(behavior={"scaleDown": {"stabilizationWindowSeconds": 0, "maxStep": 1}})
    plan = Driver(spec).replicas(*fleet(3), **QUIET)
    assert plan.scale_to == 2
    assert plan.draining == ()
    assert plan.read_pool == (R0, R1), "the replica that goes is not reported as serving reads"


def test_recommend_mode_never_drains() -> None:
    plan = Driver(drain_spec(mode="Recommend")).replicas(*fleet(3), **QUIET)
    assert plan.scale_to is None
    assert plan.draining == ()
    assert R2 in plan.read_pool
    assert plan.desired_replicas == 2


def test_zero_drain_timeout_still_takes_the_replica_out_of_the_pool_before_it_goes() -> None:
    """No wait for connections, but the plan that removes the replica does not route reads to it."""
    d = Driver(drain_spec(timeout=0))
    plan = d.replicas(*fleet(3, {2: 4}), **QUIET)
    assert plan.scale_to == 2
    assert plan.read_pool == (R0, R1)
    assert "timeout" in next(r.message for r in plan.reasons if r.rule is Rule.DRAIN_COMPLETE)


def test_a_removed_replica_does_not_come_back_while_its_pod_is_going() -> None:
    d = Driver(drain_spec())
    d.replicas(*fleet(3, {2: 5}), **QUIET)  # drain starts
    assert d.replicas(*fleet(3, {2: 0}), **QUIET).scale_to == 2  # drained: the StatefulSet shrinks
    # The next observation still lists db-replica-2 (terminating, still ready) with current = 2.
    after = d.replicas(*fleet(3, {2: 0}), current=2, read_p99=0.6 * READ_OBJECTIVE)
    assert after.read_pool == (R0, R1)


def test_a_lagging_pod_above_the_statefulset_count_is_ignored_not_a_crash() -> None:
    # After a scale-in to 2, pod 2 is still terminating, and it lags.
    obs = make_obs(current=2, replicas=[replica(0), replica(1), replica(2, lag=60.0)])
    plan = decide(make_spec(), obs, Memory(), 0.0)
    assert plan.read_pool == ("db-replica-0", "db-replica-1")
    assert "db-replica-2" not in plan.memory.pool


def test_a_failed_lag_query_holds_the_pool_instead_of_emptying_it() -> None:
    spec = make_spec()
    plan = decide(spec, make_obs(current=2), Memory(), 0.0)
    assert plan.read_pool == ("db-replica-0", "db-replica-1")
    timeout = Signal.unknown(UnknownReason.TIMEOUT, "lag query timed out")
    held = decide(spec, make_obs(current=2, lags=[timeout, timeout]), plan.memory, 15.0)
    assert held.read_pool == ("db-replica-0", "db-replica-1")
    assert held.fired(Rule.METRICS_UNKNOWN)


def test_a_missing_lag_series_still_takes_that_replica_out() -> None:
    spec = make_spec()
    plan = decide(spec, make_obs(current=2), Memory(), 0.0)
    empty = Signal.unknown(UnknownReason.EMPTY, "no series")
    after = decide(spec, make_obs(current=2, lags=[0.1, empty]), plan.memory, 15.0)
    assert after.read_pool == ("db-replica-0",)


def test_a_smaller_scale_in_mid_drain_keeps_the_drains_clock() -> None:
    """docs/decisions.md: the replicas still leaving have been out of the pool since the drain
    began, so the 60 s timeout counts from then (t = 0), not from the change (t = 15 s)."""
    d = Driver(_two_step_spec())
    assert d.replicas(*fleet(4), read_qps=1500.0).draining == (R2, R3)  # t = 0: 4 -> 2
    plans = [d.replicas(*fleet(4), read_qps=2500.0) for _ in range(4)]  # t = 15 .. 60: 4 -> 3
    assert plans[0].draining == (R3,)  # only R3 still leaves
    assert plans[0].memory.drain is not None and plans[0].memory.drain.target_replicas == 3
    assert [p.scale_to for p in plans] == [None, None, None, 3]  # 60 s from t = 0


def test_a_larger_scale_in_mid_drain_starts_a_new_clock() -> None:
    d = Driver(_two_step_spec())
    assert d.replicas(*fleet(4), read_qps=2500.0).draining == (R3,)  # t = 0: 4 -> 3
    plans = [d.replicas(*fleet(4), read_qps=1500.0) for _ in range(6)]  # t = 15 ..: 4 -> 2
    assert plans[0].draining == (R2, R3)
    assert plans[0].memory.drain is not None and plans[0].memory.drain.target_replicas == 2
    assert [p.scale_to for p in plans[:5]] == [None, None, None, None, 2]  # 60 s from t = 15


# --- lag in bytes (objectives.maxReplicationLagBytes) ------------------------------------------------
# Objective 64Mi (docs/metrics.md: "a replica must be within both to serve reads, and one whose byte
# lag is unknown does not serve"); re-entry under 64Mi x 0.5 = 32Mi, with the seconds under 2.5 s.
MI = 1 << 20


def with_bytes(r: ReplicaObservation, lag_bytes: float | None) -> ReplicaObservation:
    value = (
        Signal.of(lag_bytes) if lag_bytes is not None else Signal.unknown(UnknownReason.EMPTY, "no series")
    )
    return replace(r, lag_bytes=value)


def bytes_spec() -> ReadWriteWorkloadSpec:
    return pool_spec(objectives={"maxReplicationLagBytes": "64Mi"})


@pytest.mark.parametrize(
    ("lag_bytes", "stays"),
    [(0, True), (64 * MI, True), (64 * MI + 1, False), (None, False)],
)
def test_a_replica_behind_in_bytes_leaves_even_when_its_seconds_are_fine(
    lag_bytes: float | None, stays: bool
) -> None:
    d = Driver(bytes_spec())
    d.replicas(with_bytes(replica(0, 0.1), 0), with_bytes(replica(1, 0.1), 0))
    plan = d.replicas(with_bytes(replica(0, 0.1), 0), with_bytes(replica(1, 0.1), lag_bytes))
    assert plan.read_pool == ((R0, R1) if stays else (R0,))


def test_without_the_byte_objective_bytes_are_not_needed() -> None:
    """The default: a replica's unknown byte lag (never asked of Prometheus) does not matter."""
    d = Driver(pool_spec())
    plan = d.replicas(with_bytes(replica(0, 0.1), None), with_bytes(replica(1, 0.1), 10 * 1024 * MI))
    assert plan.read_pool == (R0, R1)
    assert plan.max_lag_bytes is None


def test_reentry_needs_both_lags_under_their_reentry_thresholds() -> None:
    d = Driver(bytes_spec(), step=15.0)
    d.replicas(with_bytes(replica(0, 0.1), 0))
    d.replicas(with_bytes(replica(0, 0.1), 100 * MI))  # leaves
    for _ in range(4):  # 60 s at 40Mi: under the objective, not under the re-entry threshold
        plan = d.replicas(with_bytes(replica(0, 0.1), 40 * MI))
    assert plan.pool_fallback
    for _ in range(3):  # 30 s (reentrySeconds) under 32Mi: back
        plan = d.replicas(with_bytes(replica(0, 0.1), 31 * MI))
    assert plan.read_pool == (R0,)


def test_byte_lag_in_words_and_in_the_plan() -> None:
    d = Driver(bytes_spec())
    d.replicas(with_bytes(replica(0, 0.1), 0), with_bytes(replica(1, 0.1), 0))
    plan = d.replicas(with_bytes(replica(0, 0.1), 3 * MI), with_bytes(replica(1, 0.2), 200 * MI))
    left = next(r for r in plan.reasons if r.rule is Rule.REPLICA_LEFT_POOL)
    assert R1 in left.message and "200MiB" in left.message and "64MiB" in left.message
    assert plan.max_lag_bytes == 200 * MI
    lag = cond(plan, CT.REPLICATION_LAG_HIGH)
    assert lag.status is Status.TRUE and R1 in lag.message


def test_an_unknown_byte_lag_is_said_as_such() -> None:
    d = Driver(bytes_spec())
    d.replicas(with_bytes(replica(0, 0.1), 0), with_bytes(replica(1, 0.1), 0))
    plan = d.replicas(with_bytes(replica(0, 0.1), 0), with_bytes(replica(1, 0.1), None))
    left = next(r for r in plan.reasons if r.rule is Rule.REPLICA_LEFT_POOL)
    assert "byte lag is unknown (EmptyResult)" in left.message
