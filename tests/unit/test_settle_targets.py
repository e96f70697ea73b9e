"""core/settle.py `starting_replicas` with roles: which pods count toward the scale target's count.

A replica the target still lacks is awaited (a scale-up waits for it); a former primary that runs
outside the target and is a replica now (the pair layout after a failover) serves reads but is
none of the target's pods; a primary promoted inside the target is one of them.
"""

from __future__ import annotations

from rwscaler.core.memory import ReplicaMemory
from rwscaler.core.observation import Observation, ReplicaObservation, Signal
from rwscaler.core.settle import starting_replicas

ZERO = Signal.of(0.0)


def obs(replicas: list[ReplicaObservation], current: int, primary_rank: int | None) -> Observation:
    return Observation(ZERO, ZERO, ZERO, ZERO, current, "p", tuple(replicas), primary_rank=primary_rank)


def serving(name: str, rank: int, in_target: bool = True) -> ReplicaObservation:
    return ReplicaObservation(name, rank, True, Signal.of(0.1), in_target=in_target)


POOL = {name: ReplicaMemory(in_pool=True) for name in ("db-0", "db-replica-0", "db-replica-1")}


def test_a_former_primary_outside_the_target_does_not_stand_in_for_a_missing_replica() -> None:

    # The target runs db-replica-0 and the promoted db-replica-1 (rank 1); db-replica-0 is gone
    # (being recreated); db-0 serves reads from outside the target.
    o = obs([serving("db-0", -1, in_target=False)], current=2, primary_rank=1)
    assert starting_replicas(o, POOL) == 1


def test_the_primary_inside_the_target_is_one_of_its_pods() -> None:

    o = obs([serving("db-replica-0", 0), serving("db-0", -1, in_target=False)], current=2, primary_rank=1)
    assert starting_replicas(o, POOL) == 0
