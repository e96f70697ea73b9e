"""The key metrics' rules (core/diagnosis.py), with the thresholds docs/diagnosis.md gives.

- read pool saturated: >= 0.5 clients waiting on average -> read side rising and breached,
  ReadCapacityExhausted=ReadPoolSaturated, one replica more, even with read p99 within objective;
- lock contention: >= 0.5 sessions waiting for a lock on average, or any deadlock -> the write
  side, WriteBottleneck=LockContention, ReduceLockContention, never a replica added for it;
- batch writes: <= 1.5 rows per write statement at >= 100 writes/s -> BatchWrites;
- an unknown metric fires nothing; status shows the known ones (keyMetrics).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.unit.builders import READ_OBJECTIVE, make_obs, make_spec, rules

from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Diagnostics, Observation, Signal, UnknownReason
from rwscaler.core.plan import Plan
from rwscaler.core.vocabulary import ConditionType as CT
from rwscaler.core.vocabulary import EffectiveMode, Rule, Status
from rwscaler.core.vocabulary import RecommendationType as RT
from rwscaler.report import render_status


def with_diagnostics(obs: Observation, **values: float | None) -> Observation:
    signals = {
        name: Signal.of(v) if v is not None else Signal.unknown(UnknownReason.EMPTY, "no series")
        for name, v in values.items()
    }
    return replace(obs, diagnostics=Diagnostics(**signals))


def decide_once(obs: Observation, **spec: object) -> Plan:
    return decide(make_spec(**spec), obs, Memory(), 1000.0)


def recs(plan: Plan) -> set[RT]:
    return {r.type for r in plan.recommendations}


# --- read pool saturated ------------------------------------------------------------------------


@pytest.mark.parametrize(("waiting", "fires"), [(0.0, False), (0.49, False), (0.5, True), (4.0, True)])
def test_clients_waiting_for_a_read_connection_are_read_capacity_running_out(
    waiting: float, fires: bool
) -> None:
    # read p99 well within its objective: only the pool says reads are short of capacity
    obs = with_diagnostics(make_obs(read_p99=0.5 * READ_OBJECTIVE, current=2), read_pool_waiting=waiting)
    plan = decide_once(obs)
    exhausted = plan.condition(CT.READ_CAPACITY_EXHAUSTED)
    assert (Rule.READ_POOL_SATURATED in rules(plan)) is fires
    assert (exhausted.reason == "ReadPoolSaturated") is fires
    assert (exhausted.status is Status.TRUE) is fires
    assert (plan.desired_replicas == 3) is fires
    if fires:
        assert f"{waiting:.1f} clients" in exhausted.message


def test_a_saturated_read_pool_adds_no_replica_while_the_write_side_rises() -> None:
    obs = with_diagnostics(make_obs(current=2), read_pool_waiting=3.0, lock_waits=2.0)
    plan = decide_once(obs)
    assert plan.desired_replicas == 2


# --- lock contention ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lock_waits", "deadlocks", "fires"),
    [(0.0, 0.0, False), (0.49, 0.0, False), (0.5, 0.0, True), (0.0, 0.01, True)],
)
def test_lock_waits_or_deadlocks_point_at_the_write_side(
    lock_waits: float, deadlocks: float, fires: bool
) -> None:
    obs = with_diagnostics(make_obs(current=2), lock_waits=lock_waits, deadlocks=deadlocks)
    plan = decide_once(obs)
    bottleneck = plan.condition(CT.WRITE_BOTTLENECK)
    assert (bottleneck.status is Status.TRUE and bottleneck.reason == "LockContention") is fires
    assert (RT.REDUCE_LOCK_CONTENTION in recs(plan)) is fires
    assert plan.desired_replicas == 2  # never a reason to add replicas


def test_lock_contention_with_slow_reads_adds_no_replica() -> None:
    """Read p99 breached and writes contended: the latency step waits for the write side."""
    obs = with_diagnostics(make_obs(read_p99=2 * READ_OBJECTIVE, current=2), lock_waits=3.0)
    plan = decide_once(obs)
    assert plan.desired_replicas == 2
    limit = plan.condition(CT.CAPACITY_LIMIT)
    assert limit.status is Status.TRUE and "sessions on average wait for locks" in limit.message


# --- batch writes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "writes", "fires"),
    [(1.0, 100.0, True), (1.5, 500.0, True), (1.51, 500.0, False), (1.0, 99.0, False), (100.0, 500.0, False)],
)
def test_single_row_writes_at_a_high_rate_are_told_to_batch(rows: float, writes: float, fires: bool) -> None:
    obs = with_diagnostics(make_obs(write_qps=writes, current=2), rows_per_write=rows)
    plan = decide_once(obs)
    assert (RT.BATCH_WRITES in recs(plan)) is fires
    if fires:
        (rec,) = [r for r in plan.recommendations if r.type is RT.BATCH_WRITES]
        assert "10-100x" in rec.message and f"{writes:.0f}/s" in rec.message
        assert plan.desired_replicas == 2  # advice, not an action


# --- unknown ------------------------------------------------------------------------------------


def test_unknown_key_metrics_fire_nothing() -> None:
    obs = with_diagnostics(
        make_obs(current=2), read_pool_waiting=None, lock_waits=None, deadlocks=None, rows_per_write=None
    )
    plan = decide_once(obs)
    assert not {Rule.READ_POOL_SATURATED, Rule.LOCK_CONTENTION, Rule.BATCH_WRITES} & rules(plan)
    assert plan.condition(CT.WRITE_BOTTLENECK).status is Status.FALSE
    status = render_status(plan, obs, previous={}, generation=1, now=1000.0, mode=EffectiveMode.ENFORCE)
    assert "keyMetrics" not in status["observed"]


def test_status_shows_the_known_key_metrics() -> None:
    obs = with_diagnostics(
        make_obs(current=2),
        read_bytes=4_000_000.0,
        write_bytes=100_000.0,
        read_cpu=0.9,
        write_cpu=0.1,
        read_pool_active=5.0,
        read_pool_waiting=0.0,
        lock_waits=0.2,
        deadlocks=0.0,
        rows_per_write=3.0,
    )
    plan = decide_once(obs)
    status = render_status(plan, obs, previous={}, generation=1, now=1000.0, mode=EffectiveMode.ENFORCE)
    shown = status["observed"]["keyMetrics"]
    assert shown["readWriteByteRatio"] == "40.0"
    assert shown["readCPUShare"] == "90%"
    assert shown["readPool"].startswith("5/") and "0.0 clients waiting" in shown["readPool"]
    assert "writePool" not in shown  # neither active nor waiting known
    assert shown["lockWaits"] == "0.2" and shown["deadlocksPerMinute"] == "0.0"
    assert shown["rowsPerWrite"] == "3.00"
