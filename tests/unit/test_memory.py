"""What decide remembers between ticks lives in status: it round-trips through JSON, an unreadable
status starts afresh, a restart (memory read back from status every tick) decides exactly as an
operator that never stopped, and memory stays bounded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.unit.builders import READ_OBJECTIVE, WRITE_OBJECTIVE, make_obs, make_spec, replica, run_ticks

from rwscaler.core.decide import decide
from rwscaler.core.memory import Drain, Ewma, Memory, ReplicaMemory
from rwscaler.core.observation import Observation
from rwscaler.core.spec import ReadWriteWorkloadSpec


def through_json(memory: Memory) -> Memory:
    return Memory.from_status(json.loads(json.dumps(memory.to_status(), allow_nan=False)))


FULL = Memory(
    last_tick=1234.5,
    recommendations=((1200.0, 3), (1215.0, 4), (1230.0, 4)),
    last_scale_time=1215.0,
    last_scale_direction=1,
    pool={
        "db-replica-0": ReplicaMemory(in_pool=True, healthy_since=100.0),
        "db-replica-1": ReplicaMemory(in_pool=False, healthy_since=None, left_pool=True),
    },
    drain=Drain(target_replicas=2, started=1230.0, replicas=("db-replica-2",)),
    read_qps=Ewma(fast=1000.5, slow=900.25, since=0.0),
    write_qps=Ewma(fast=10.0, slow=11.0, since=0.0),
    read_latency=Ewma(fast=0.04, slow=0.03, since=0.0),
    write_latency=Ewma(fast=0.01, slow=0.01, since=0.0),
    breach_qps_per_replica=512.0,
    ewma_time=1234.5,
)


@pytest.mark.parametrize("memory", [Memory(), FULL], ids=["empty", "full"])
def test_round_trip(memory: Memory) -> None:
    assert Memory.from_status(memory.to_status()) == memory
    assert through_json(memory) == memory


def test_status_form_is_plain_json() -> None:
    status = FULL.to_status()
    text = json.dumps(status, allow_nan=False)
    assert isinstance(status["pool"], dict) and isinstance(status["recommendations"], list)
    assert "db-replica-2" in text


@pytest.mark.parametrize(
    "status",
    [
        None,
        [],
        "memory",
        42,
        {"recommendations": "soon"},
        {"pool": {"r": {"in_pool": "maybe"}}},
        {"drain": 5},
    ],
)
def test_unreadable_status_starts_afresh(status: Any) -> None:
    assert Memory.from_status(status) == Memory()


def test_decide_does_not_mutate_its_memory() -> None:
    before = Memory.from_status(FULL.to_status())
    decide(make_spec(), make_obs(current=3, lags=[9.0, 0.1, 0.1]), FULL, 1250.0)
    assert before == FULL


def test_decide_is_deterministic() -> None:
    spec, obs = make_spec(), make_obs(current=3, read_p99=2 * READ_OBJECTIVE)
    assert decide(spec, obs, FULL, 1250.0) == decide(spec, obs, FULL, 1250.0)


def varied_world(t: float, current: int) -> Observation:
    """A workload that goes through breaches, headroom, lag, an outage and a write surge."""
    phase = int(t // 150) % 6
    read_level = [0.6, 2.0, 0.3, 0.6, 0.6, 0.2][phase]
    write_level = [0.5, 0.5, 0.5, 2.5, 0.5, 0.5][phase]
    lags: list[float | None] = [0.1 + 0.5 * ((i + int(t // 15)) % 3) for i in range(current)]
    if phase == 4 and current:
        lags[-1] = 12.0
    if phase == 5:
        return make_obs(current=current, read_qps=None, read_p99=None, lags=[None] * current)
    return make_obs(
        current=current,
        read_qps=500.0 + t,
        write_qps=50.0 + (t % 300),
        read_p99=read_level * READ_OBJECTIVE,
        write_p99=write_level * WRITE_OBJECTIVE,
        replicas=[replica(i, lag, connections=0 if int(t // 15) % 2 else 3) for i, lag in enumerate(lags)],
    )


@pytest.mark.parametrize(
    "spec",
    [
        make_spec(),
        make_spec(
            pooler={"kind": "EndpointSlice", "readService": "r"}, replicas={"targetReadQPSPerReplica": 300.0}
        ),
        make_spec(
            consistency="bounded", behavior={"scaleUp": {"stabilizationWindowSeconds": 60, "maxStep": 1}}
        ),
    ],
    ids=["default", "capacity-endpointslice", "bounded"],
)
def test_restart_every_tick_decides_as_an_operator_that_never_stopped(spec: ReadWriteWorkloadSpec) -> None:
    """Memory read back from status at every tick (an operator restarted before each decision) gives
    the same plans, tick for tick, as memory kept in process."""
    kept = run_ticks(spec, varied_world, ticks=120, current=3)
    memory, current = Memory(), 3
    for tick in kept:
        obs = varied_world(tick.t, current)
        plan = decide(spec, obs, through_json(memory), tick.t)
        assert plan == tick.plan, f"diverged at t={tick.t}"
        assert through_json(plan.memory) == plan.memory
        memory = plan.memory
        current = plan.scale_to if plan.scale_to is not None else current
    assert any(t.plan.scale_to is not None for t in kept), "the run exercises scaling"


def test_memory_stays_bounded() -> None:
    """The recommendation history keeps only the longest window; replicas that are gone are forgotten."""
    spec = make_spec(behavior={"scaleDown": {"stabilizationWindowSeconds": 300, "maxStep": 1}})
    ticks = run_ticks(spec, varied_world, ticks=400, current=3)
    for tick in ticks:
        history = tick.plan.memory.recommendations
        assert len(history) <= 300 // 15 + 1
        assert all(tick.t - t <= 300 for t, _ in history)
        assert set(tick.plan.memory.pool) <= {f"db-replica-{i}" for i in range(tick.current)}
