"""The learned read capacity (issue 10, item 3), from docs/decisions.md "Learned capacity".

The numbers here come from that section, not from the code: the objective breaks at read p99 over
the objective itself (not the tolerance band); the evidence is read QPS / replicas in the pool,
taken only with writes stable, no replica starting and no replica joined the pool in the last
latency window (max(2 x intervalSeconds, 60 s)); a lower value replaces the learned one, a breach
within learned x (1 + tolerance) confirms it; read p99 at or under 60% of its objective while the
replicas carry a sustained load above learned x (1 + tolerance) forgets it; it expires a week
(604,800 s) after it was last learned or confirmed; it is the effective capacity while under
targetReadQPSPerReplica, with a LowerTargetReadQPSPerReplica recommendation and
status.learnedCapacity.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.builders import (
    READ_OBJECTIVE,
    WRITE_OBJECTIVE,
    deep_merge,
    make_obs,
    no_stabilization,
    replica,
    replica_name,
)

from rwscaler.core.decide import decide
from rwscaler.core.durations import rfc3339
from rwscaler.core.memory import Ewma, Memory, ReplicaMemory
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.core.vocabulary import EffectiveMode, Rule
from rwscaler.core.vocabulary import RecommendationType as RT
from rwscaler.report import render_status

WEEK = 7 * 24 * 3600.0  # docs/decisions.md: the learned capacity expires a week after it was last seen
NOW = 10 * WEEK  # far from 0, so "since" values are unambiguous
TARGET = 800.0
TOL = 0.1


def spec(**overrides: Any) -> ReadWriteWorkloadSpec:
    base = {
        "replicas": {"targetReadQPSPerReplica": TARGET, "maxReplicas": 20},
        "behavior": {"tolerance": TOL, "trend": {"forecastSeconds": 0}},
    }
    return no_stabilization(**deep_merge(base, overrides))


def settled_memory(in_pool: int, now: float = NOW, **fields: Any) -> Memory:
    """Memory of a pool of `in_pool` replicas that has not changed for a long time."""
    pool = {replica_name(i): ReplicaMemory(in_pool=True) for i in range(in_pool)}
    return Memory(last_tick=now - 15, ewma_time=now - 15, pool=pool, **fields)


# ---- learning ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "p99_ratio", "write_ratio", "replicas", "in_pool", "expected"),
    [
        ("breach", 1.2, 0.5, None, 3, 600.0),
        ("over the objective, inside the tolerance band", 1.05, 0.5, None, 3, 600.0),
        ("under the objective", 0.95, 0.5, None, 3, None),
        ("writes breached (write-bound, not read load)", 1.2, 2.0, None, 3, None),
        ("a replica joined the pool this tick", 1.2, 0.5, None, 2, None),
        (
            "a replica still starting",
            1.2,
            0.5,
            [replica(0), replica(1), replica(2), replica(3, ready=False)],
            3,
            None,
        ),
    ],
)
def test_what_is_learned_from_a_breach(
    case: str,
    p99_ratio: float,
    write_ratio: float,
    replicas: list[Any] | None,
    in_pool: int,
    expected: float | None,
) -> None:
    obs = make_obs(
        current=len(replicas) if replicas else 3,
        replicas=replicas,
        read_qps=1800.0,  # 600 reads/s per replica of 3 in the pool
        read_p99=p99_ratio * READ_OBJECTIVE,
        write_p99=write_ratio * WRITE_OBJECTIVE,
    )
    plan = decide(spec(), obs, settled_memory(in_pool), NOW)
    assert plan.memory.breach_qps_per_replica == (pytest.approx(expected) if expected else None), case
    if expected is not None:
        assert plan.memory.breach_time == NOW
        assert plan.fired(Rule.LEARNED_CAPACITY)


@pytest.mark.parametrize(
    ("case", "per_replica", "value", "since"),
    [
        ("a lower breach replaces it", 500.0, 500.0, NOW),
        ("a breach within the tolerance above confirms it", 640.0, 600.0, NOW),
        ("a breach further above leaves it as it was", 700.0, 600.0, NOW - 3600),
    ],
)
def test_a_new_breach_replaces_or_confirms(case: str, per_replica: float, value: float, since: float) -> None:
    memory = settled_memory(3, breach_qps_per_replica=600.0, breach_time=NOW - 3600)
    obs = make_obs(current=3, read_qps=3 * per_replica, read_p99=1.5 * READ_OBJECTIVE)
    plan = decide(spec(), obs, memory, NOW)
    assert plan.memory.breach_qps_per_replica == pytest.approx(value), case
    assert plan.memory.breach_time == since, case


# ---- forgetting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "p99_ratio", "per_replica", "slow_avg_per_replica", "kept"),
    [
        ("healthy well above the learned value", 0.5, 700.0, 700.0, False),
        ("healthy at exactly 60% of the objective", 0.6, 700.0, 700.0, False),
        ("healthy, but within the tolerance above it", 0.5, 650.0, 650.0, True),
        ("not far enough under the objective", 0.7, 700.0, 700.0, True),
        ("a jump: the 300 s average is still low", 0.5, 700.0, 500.0, True),
    ],
)
def test_contradicting_evidence_forgets_it(
    case: str, p99_ratio: float, per_replica: float, slow_avg_per_replica: float, kept: bool
) -> None:
    reads = Ewma(fast=3 * per_replica, slow=3 * slow_avg_per_replica, since=0.0)
    memory = settled_memory(3, breach_qps_per_replica=600.0, breach_time=NOW - 3600, read_qps=reads)
    obs = make_obs(current=3, read_qps=3 * per_replica, read_p99=p99_ratio * READ_OBJECTIVE)
    plan = decide(spec(), obs, memory, NOW)
    assert (plan.memory.breach_qps_per_replica == pytest.approx(600.0)) is kept, case
    if not kept:
        assert plan.memory.breach_qps_per_replica is None


@pytest.mark.parametrize(
    ("age", "kept"),
    [(WEEK - 15, True), (WEEK, False), (WEEK + 3600, False)],
)
def test_it_expires_a_week_after_it_was_last_seen(age: float, kept: bool) -> None:
    memory = settled_memory(3, breach_qps_per_replica=600.0, breach_time=NOW - age)
    obs = make_obs(current=3, read_qps=2000.0, read_p99=0.7 * READ_OBJECTIVE)
    plan = decide(spec(), obs, memory, NOW)
    # 2,000 reads/s: ceil(2000 / 600) = 4 with the learned value; 2000 / (3 x 800) = 0.83, under
    # the band, ceil(2000 / 800) = 3 without it.
    assert plan.desired_replicas == (4 if kept else 3)
    assert (plan.memory.breach_qps_per_replica is not None) is kept


# ---- sizing with it -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("learned", "expected"),
    [
        (None, 3),  # 2000 / 2400 = 0.83: ceil(2000 / 800) = 3
        (900.0, 3),  # above the target: the target applies
        (600.0, 4),  # ceil(2000 / 600)
        (400.0, 5),  # ceil(2000 / 400)
    ],
)
def test_the_learned_value_is_the_capacity_when_under_the_target(
    learned: float | None, expected: int
) -> None:
    memory = settled_memory(3, breach_qps_per_replica=learned, breach_time=NOW - 60 if learned else None)
    plan = decide(spec(), make_obs(current=3, read_qps=2000.0, read_p99=0.7 * READ_OBJECTIVE), memory, NOW)
    assert plan.desired_replicas == expected


def test_a_breach_does_not_repeat_at_the_next_replica_count() -> None:
    """The issue's week-long climb, in small: the objective breaks at 600/s per replica with a
    target of 800; from then on a replica is added when the load per replica passes 600, not 800."""
    s = spec()
    breach = make_obs(current=3, read_qps=1800.0, read_p99=1.3 * READ_OBJECTIVE)
    plan = decide(s, breach, settled_memory(3), NOW)
    assert plan.desired_replicas == 4  # the latency step: one more than ceil(1800 / 600) = 3
    memory = plan.memory
    for i, reads in enumerate((1900.0, 2300.0, 2500.0)):
        current = 4
        now = NOW + 600 * (i + 1)
        memory = settled_memory(
            4, now, breach_qps_per_replica=memory.breach_qps_per_replica, breach_time=memory.breach_time
        )
        plan = decide(
            s, make_obs(current=current, read_qps=reads, read_p99=0.7 * READ_OBJECTIVE), memory, now
        )
        assert plan.desired_replicas == (4 if reads <= 2400.0 else 5), reads


def test_no_learned_capacity_without_a_target_keeps_the_headroom_floor() -> None:
    """Without targetReadQPSPerReplica the learned value only keeps a headroom scale-down from
    removing a replica the others could not do without (as before)."""
    s = no_stabilization()
    memory = settled_memory(3, breach_qps_per_replica=600.0, breach_time=NOW - 60)
    low = 0.1 * READ_OBJECTIVE
    # 1,200 reads/s on 2 replicas is 600/s each: not under 600 x 0.9, so no replica fewer.
    assert decide(s, make_obs(current=3, read_qps=1200.0, read_p99=low), memory, NOW).desired_replicas == 3
    assert decide(s, make_obs(current=3, read_qps=900.0, read_p99=low), memory, NOW).desired_replicas == 2


# ---- what the user sees ------------------------------------------------------------------------


@pytest.mark.parametrize(("learned", "recommended"), [(600.0, True), (900.0, False)])
def test_status_shows_it_and_recommends_a_lower_target(learned: float, recommended: bool) -> None:
    since = NOW - 3600
    memory = settled_memory(3, breach_qps_per_replica=learned, breach_time=since)
    obs = make_obs(current=3, read_qps=1500.0, read_p99=0.7 * READ_OBJECTIVE)
    plan = decide(spec(), obs, memory, NOW)
    recs = {r.type: r for r in plan.recommendations}
    assert (RT.LOWER_READ_TARGET in recs) is recommended
    if recommended:
        assert RT.LOWER_READ_TARGET.value == "LowerTargetReadQPSPerReplica"
        assert "600 reads/s per replica" in recs[RT.LOWER_READ_TARGET].message
        assert "targetReadQPSPerReplica to 600" in recs[RT.LOWER_READ_TARGET].message
    status = render_status(plan, obs, previous={}, generation=1, now=NOW, mode=EffectiveMode.ENFORCE)
    shown = status["learnedCapacity"]
    assert shown["readQPSPerReplica"] == f"{learned:.0f}/s"
    assert shown["since"] == rfc3339(since)
    assert shown["expires"] == rfc3339(since + WEEK)
    assert shown["sizingWith"] is recommended


def test_status_has_no_learned_capacity_when_none_is_learned() -> None:
    obs = make_obs(current=3, read_qps=1500.0, read_p99=0.7 * READ_OBJECTIVE)
    plan = decide(spec(), obs, settled_memory(3), NOW)
    status = render_status(plan, obs, previous={}, generation=1, now=NOW, mode=EffectiveMode.ENFORCE)
    assert "learnedCapacity" not in status


# ---- memory ------------------------------------------------------------------------------------


def test_the_new_memory_fields_round_trip_through_status() -> None:
    memory = settled_memory(2, breach_qps_per_replica=612.5, breach_time=NOW - 10, pool_grew_at=NOW - 20)
    assert Memory.from_status(memory.to_status()) == memory


def test_a_status_from_the_previous_version_loads_and_starts_the_clock() -> None:
    """A status written before `breach_time`, `pool_grew_at` and `read_pool` existed: the learned value is kept
    and its week starts at the next tick."""
    old = settled_memory(3, breach_qps_per_replica=600.0).to_status()
    del old["breach_time"]
    del old["pool_grew_at"]
    del old["read_pool"]
    memory = Memory.from_status(old)
    assert memory.breach_qps_per_replica == 600.0
    assert memory.breach_time is None
    plan = decide(spec(), make_obs(current=3, read_qps=2000.0, read_p99=0.7 * READ_OBJECTIVE), memory, NOW)
    assert plan.desired_replicas == 4
    assert plan.memory.breach_time == NOW


def test_a_breach_with_no_reads_teaches_nothing() -> None:
    """Read p99 over its objective with 0 reads/s (replay, a cold cache): no read capacity to learn."""
    obs = make_obs(current=3, read_qps=0.0, read_p99=1.5 * READ_OBJECTIVE)
    plan = decide(spec(), obs, settled_memory(3), NOW)
    assert plan.memory.breach_qps_per_replica is None
