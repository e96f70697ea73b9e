"""The one place an Observation is put together from what was seen: pods, roles, signals.

Called by the operator's tick (`rwscaler.reconcile`) with the pods of the scale target and the
readings from Prometheus, by the simulator (`rwscaler.sim.engine`) with its model's pods, and by
the tests; so all three agree on which pods are replicas, which is the primary and what a
scale-in would remove. Pure.

Roles come from `core/roles.py`; a pod whose role is unknown is neither the primary nor a
replica: it serves no reads and counts for nothing. When the primary found now is not the pod
the write signals were read from (a promotion since the query was planned), the write signals
are unknown for this tick: the next tick reads them from the new primary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rwscaler.core.observation import (
    Diagnostics,
    History,
    Observation,
    ReplicaObservation,
    Signal,
    UnknownReason,
)
from rwscaler.core.roles import PodEvidence, Role, RoleVerdict, resolve_roles
from rwscaler.core.spec import ReadWriteWorkloadSpec

# A pod outside the scale target (the pair layout's primary StatefulSet) is never removed by a
# scale-in: its rank is below any count.
OUTSIDE_TARGET_RANK = -1


def _unknown(why: str) -> Signal:
    return Signal.unknown(UnknownReason.NOT_OBSERVED, why)


@dataclass(frozen=True, slots=True)
class PodSeen:
    """One pod of the workload as the adapters (or the simulator) saw it."""

    name: str
    ready: bool
    # Place in the scale target's removal order (ReplicaObservation.rank); None: outside the target.
    rank: int | None
    labels: Mapping[str, str] = field(default_factory=dict)
    in_primary_set: bool = False  # a pod of spec.primary.statefulSet
    lag: Signal = field(default_factory=lambda: _unknown("no lag series for this pod"))
    lag_bytes: Signal = field(
        default_factory=lambda: Signal.unknown(UnknownReason.NOT_CONFIGURED, "no byte lag objective")
    )
    is_replica: Signal = field(default_factory=lambda: _unknown("no role metric for this pod"))  # 1 / 0
    connections: int | None = None
    synchronous: bool = False


@dataclass(frozen=True, slots=True)
class SidesSeen:
    """The four scalar signals, and the pods the write side was read from."""

    read_qps: Signal
    write_qps: Signal
    read_p99: Signal
    write_p99: Signal
    # The pods the write signals were read from; None: the signals do not depend on it (a
    # pooler's databases, the simulator).
    write_pods: tuple[str, ...] | None = None
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


def metric_role(signal: Signal) -> Role | None:
    """The role metric's word: 1 a replica, 0 the primary (read_only / in recovery); None unknown."""
    if signal.value is None:
        return None
    return Role.REPLICA if signal.value >= 0.5 else Role.PRIMARY


def roles_of(
    spec: ReadWriteWorkloadSpec, pods: Sequence[PodSeen], *, with_metric: bool = True
) -> RoleVerdict:
    evidence = [
        PodEvidence(p.name, p.labels, p.in_primary_set, metric_role(p.is_replica) if with_metric else None)
        for p in pods
    ]
    return resolve_roles(evidence, spec.primary.roleLabels, spec.primary.primarySelector)


def assemble(
    spec: ReadWriteWorkloadSpec,
    sides: SidesSeen,
    pods: Sequence[PodSeen],
    current_replicas: int,
    history: History | None = None,
    removal_order_known: bool = True,
) -> tuple[Observation, RoleVerdict]:
    """The Observation `decide` takes, and the role verdict it was built on (for status)."""
    verdict = roles_of(spec, pods)
    write_qps, write_p99 = sides.write_qps, sides.write_p99
    if sides.write_pods is not None and set(sides.write_pods) != set(verdict.primaries):
        moved = _unknown(
            f"the primary is now {', '.join(verdict.primaries) or 'unknown'}, the write signals were read from "
            f"{', '.join(sides.write_pods) or 'no pod'}: they follow the primary from the next tick"
        )
        write_qps = write_p99 = moved
    by_name = {p.name: p for p in pods}
    replicas = tuple(
        ReplicaObservation(
            name=p.name,
            rank=OUTSIDE_TARGET_RANK if p.rank is None else p.rank,
            ready=p.ready,
            lag=p.lag,
            lag_bytes=p.lag_bytes,
            synchronous=p.synchronous,
            connections=p.connections,
            in_target=p.rank is not None,
        )
        for p in sorted(
            (by_name[n] for n in verdict.replicas), key=lambda p: (p.rank is not None, p.rank, p.name)
        )
    )
    primary = verdict.primary or (verdict.primaries[0] if verdict.primaries else "")
    primary_pod = by_name.get(verdict.primary) if verdict.primary is not None else None
    obs = Observation(
        read_qps=sides.read_qps,
        write_qps=write_qps,
        read_p99=sides.read_p99,
        write_p99=write_p99,
        current_replicas=current_replicas,
        primary=primary,
        replicas=replicas,
        history=history or History(),
        primary_rank=primary_pod.rank if primary_pod is not None else None,
        roles_problem=verdict.problem,
        removal_order_known=removal_order_known,
        diagnostics=sides.diagnostics,
    )
    return obs, verdict
