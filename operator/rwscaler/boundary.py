"""The boundary between a reconcile tick and the cluster: plain data and small protocols.

`rwscaler.reconcile` is written against these; `rwscaler.kube` implements `Cluster` and one
`ScaleTarget` per kind of scale target (`rwscaler.kube.targets`), the pooler packages implement
`ReadRouter`s; the unit tests implement them in memory. It lives apart from `reconcile` so that the adapters depend only
on this (and the core), never on the metrics layer that `reconcile` also uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rwscaler.core.plan import Plan
from rwscaler.core.spec import GROUP, KIND, VERSION, ReadWriteWorkloadSpec, ScaleTargetRef
from rwscaler.core.vocabulary import Event, ReadyReason


@dataclass(frozen=True, slots=True)
class Port:
    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class TargetState:
    """A scale target as read now, through its `scale` subresource (as HPA reads it)."""

    ref: ScaleTargetRef
    uid: str
    count: int  # the scale subresource's spec.replicas: the target's own count
    selector: str  # its status.selector: a label selector string, as a list request takes it


@dataclass(frozen=True, slots=True)
class PodInfo:
    name: str
    uid: str
    ready: bool
    ip: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()  # the pod's container ports
    # Its place in the target's removal order (core.observation.ReplicaObservation.rank, before
    # the primary is taken off); None: the target never removes it, or it is not the target's.
    rank: int | None = None


@dataclass(frozen=True, slots=True)
class OwnerRef:
    """The ReadWriteWorkload, as the owner of what the operator creates and the subject of events."""

    namespace: str
    name: str
    uid: str
    api_version: str = f"{GROUP}/{VERSION}"
    kind: str = KIND


@dataclass(frozen=True, slots=True)
class Endpoint:
    pod: str
    uid: str
    ip: str


class ClusterProblem(Exception):
    """A known reason the workload cannot be reconciled now; reported as Ready=False."""

    def __init__(self, reason: ReadyReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ScaleTarget(Protocol):
    """One kind of scale target (a module of `rwscaler.kube.targets` each): its count and
    selector, its pods in the order it removes them, and scaling it. Raises ClusterProblem for
    known problems."""

    # False when the kind's choice of pod on a scale-in cannot be foreseen (the pods' ranks are
    # then only a stable order): rwscaler does not scale such a target in.
    removal_order_known: bool

    async def read(self, namespace: str, ref: ScaleTargetRef) -> TargetState | None:
        """The target now, or None when it does not exist."""
        ...

    async def pods(self, namespace: str, target: TargetState, counts_primary: bool) -> list[PodInfo]:
        """The target's pods, each with its rank in the removal order. `counts_primary`: the
        target's count includes the primary (spec.target_counts_primary)."""
        ...

    async def scale(self, namespace: str, target: TargetState, count: int) -> None:
        """Set the target's own count (the read replicas, plus the primary when it counts it)."""
        ...


class Cluster(Protocol):
    """What a tick needs from Kubernetes. Implementations raise ClusterProblem for known problems."""

    async def get_workload(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def target(self, ref: ScaleTargetRef) -> ScaleTarget:
        """The scale target port for this kind (ClusterProblem: no such kind, or no scale subresource)."""
        ...

    async def read_secret(self, namespace: str, name: str, key: str) -> str: ...
    async def patch_status(
        self,
        namespace: str,
        name: str,
        previous: Mapping[str, Any],
        status: Mapping[str, Any],
        resource_version: str | None,
    ) -> bool:
        """Write what changed from `previous` to `status`, only if the workload is still at
        `resource_version`; False (nothing written) when it changed meanwhile."""
        ...

    async def post_events(self, owner: OwnerRef, events: Sequence[Event]) -> None: ...


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """Everything a read router needs to point reads at exactly `endpoints`."""

    owner: OwnerRef
    spec: ReadWriteWorkloadSpec
    plan: Plan
    endpoints: tuple[Endpoint, ...]  # the read pool, with pod IPs (the primary when it fell back)
    primary: Endpoint | None
    ports: tuple[Port, ...]


class ReadRouter(Protocol):
    async def apply(self, request: RouteRequest) -> bool:
        """Make the router serve exactly request.endpoints; True when something changed."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectionsRequest:
    owner: OwnerRef
    spec: ReadWriteWorkloadSpec
    replicas: tuple[Endpoint, ...]  # every replica pod that has an IP


@runtime_checkable
class ConnectionCounter(Protocol):
    """A router that can say how many server connections each replica still has (for drains).

    Optional: a router without it (the EndpointSlice one) leaves `connections` unknown, so a
    scale-in waits for `drainTimeoutSeconds`."""

    async def connections(self, request: ConnectionsRequest) -> Mapping[str, int | None]: ...
