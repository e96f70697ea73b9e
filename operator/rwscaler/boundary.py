"""The boundary between a reconcile tick and the cluster: plain data and small protocols.

`rwscaler.reconcile` is written against these; `rwscaler.kube` implements `Cluster` and the
`EndpointSlice` `ReadRouter`, and a pooler package can implement another `ReadRouter`; the unit
tests implement both in memory. It lives apart from `reconcile` so that the adapters depend only
on this (and the core), never on the metrics layer that `reconcile` also uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rwscaler.core.plan import Plan
from rwscaler.core.spec import GROUP, KIND, VERSION, ReadWriteWorkloadSpec
from rwscaler.core.vocabulary import Event, ReadyReason


@dataclass(frozen=True, slots=True)
class Port:
    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class StatefulSetInfo:
    name: str
    uid: str
    replicas: int  # spec.replicas
    selector: Mapping[str, Any]  # spec.selector (matchLabels / matchExpressions)
    ports: tuple[Port, ...] = ()  # container ports of the pod template


@dataclass(frozen=True, slots=True)
class PodInfo:
    name: str
    uid: str
    ordinal: int
    ready: bool
    ip: str | None


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


class Cluster(Protocol):
    """What a tick needs from Kubernetes. Implementations raise ClusterProblem for known problems."""

    async def get_workload(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def get_statefulset(self, namespace: str, name: str) -> StatefulSetInfo | None: ...
    async def list_pods(self, namespace: str, statefulset: StatefulSetInfo) -> list[PodInfo]: ...
    async def read_secret(self, namespace: str, name: str, key: str) -> str: ...
    async def scale(self, namespace: str, statefulset: str, replicas: int) -> None: ...
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
