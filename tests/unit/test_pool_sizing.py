"""Connection pool sizing from the seed's guidelines (section 5): write pool max = cores x 2, min idle
= cores; read pool max = cores x 2 x servers in the read pool, min idle = cores x servers; timeouts
per side within the seed's ranges. Recomputed by decide whenever the read pool changes."""

from __future__ import annotations

import pytest
from tests.unit.builders import PRIMARY, make_obs, make_spec, replica

from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.plan import Plan
from rwscaler.core.pool_sizing import size_pools


@pytest.mark.parametrize(
    ("cores", "servers", "write_max", "write_idle", "read_max", "read_idle"),
    [
        (4, 1, 8, 4, 8, 4),
        (4, 3, 8, 4, 24, 12),
        (8, 5, 16, 8, 80, 40),
        (1, 1, 2, 1, 2, 1),
        (16, 2, 32, 16, 64, 32),
        (4, 0, 8, 4, 8, 4),  # no server in the pool still sizes for the primary that serves then
    ],
)
def test_pool_sizes(
    cores: int, servers: int, write_max: int, write_idle: int, read_max: int, read_idle: int
) -> None:
    sizing = size_pools(cores, servers)
    assert (sizing.write_max_connections, sizing.write_min_idle) == (write_max, write_idle)
    assert (sizing.read_max_connections, sizing.read_min_idle) == (read_max, read_idle)


def test_timeouts_are_per_side_and_within_the_seed_ranges() -> None:
    sizing = size_pools(4, 2)
    assert 3.0 <= sizing.write_connect_timeout_s <= 5.0
    assert 10.0 <= sizing.read_connect_timeout_s <= 30.0
    assert 5.0 <= sizing.write_query_timeout_s <= 30.0
    assert 30.0 <= sizing.read_query_timeout_s <= 120.0
    # Reads wait longer than writes, as the split-pool design has it.
    assert sizing.read_connect_timeout_s > sizing.write_connect_timeout_s
    assert sizing.read_query_timeout_s > sizing.write_query_timeout_s


def test_write_side_does_not_depend_on_the_read_pool() -> None:
    assert {size_pools(6, n).write_max_connections for n in range(1, 10)} == {12}


def run(spec_cores: int, *steps: tuple[int, list[float | None]], consistency: str = "eventual") -> list[Plan]:
    spec = make_spec(
        pooler={"kind": "EndpointSlice", "readService": "db-read", "serverCores": spec_cores},
        consistency=consistency,
        behavior={"readPool": {"reentrySeconds": 0}},
    )
    memory, plans = Memory(), []
    for i, (current, lags) in enumerate(steps):
        reps = [replica(n, lag) for n, lag in enumerate(lags)]
        plan = decide(spec, make_obs(current=current, replicas=reps), memory, 15.0 * i)
        memory = plan.memory
        plans.append(plan)
    return plans


def test_decide_sizes_the_read_pool_for_the_servers_in_it_and_recomputes_on_change() -> None:
    plans = run(
        8,
        (3, [0.1, 0.1, 0.1]),  # 3 replicas serve
        (3, [0.1, 9.0, 0.1]),  # one leaves for lag
        (4, [0.1, 9.0, 0.1, 0.2]),  # a new one joins (caught up; no re-entry wait configured)
        (4, [9.0, 9.0, 9.0, 9.0]),  # all lag: the primary serves
    )
    assert [len(p.read_pool) for p in plans] == [3, 2, 3, 1]
    assert plans[-1].read_pool == (PRIMARY,)
    assert [p.pool_sizing.read_max_connections for p in plans] == [48, 32, 48, 16]
    assert [p.pool_sizing.read_min_idle for p in plans] == [24, 16, 24, 8]
    assert {p.pool_sizing.write_max_connections for p in plans} == {16}


def test_strong_sizes_for_the_primary_and_synchronous_replicas() -> None:
    spec = make_spec(
        consistency="strong", pooler={"kind": "EndpointSlice", "readService": "db-read", "serverCores": 4}
    )
    reps = [replica(0, 0.0, synchronous=True), replica(1, 0.0), replica(2, 0.0, synchronous=True)]
    plan = decide(spec, make_obs(current=3, replicas=reps), Memory(), 0.0)
    assert plan.read_pool == (PRIMARY, "db-replica-0", "db-replica-2")
    assert plan.pool_sizing.read_max_connections == 4 * 2 * 3
