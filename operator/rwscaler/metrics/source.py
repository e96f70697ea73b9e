"""The contract between the operator and whatever reads signals: plain data in, plain data out.

The operator builds one WorkloadQuery per ReadWriteWorkload (with the pod names it found and
the Prometheus credentials it resolved from Secrets) and asks a MetricsSource for all of them at
once; the source answers one MetricsReading per workload key. A source never raises for a bad
or missing signal: it returns an unknown Signal with the reason (see core.observation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from rwscaler.core.assemble import PodSeen, SidesSeen
from rwscaler.core.observation import Diagnostics, History, Signal, UnknownReason
from rwscaler.core.spec import ReadWriteWorkloadSpec


@dataclass(frozen=True, slots=True)
class WorkloadQuery:
    key: str  # "namespace/name", unique per workload
    namespace: str
    name: str
    spec: ReadWriteWorkloadSpec
    primary_pods: tuple[str, ...]  # the pods that are primary (as the tick planned its query)
    replica_pods: tuple[str, ...]  # every other pod of the workload
    bearer_token: str | None = None
    ca_pem: str | None = None

    @property
    def pods(self) -> tuple[str, ...]:
        return (*self.primary_pods, *self.replica_pods)

    @property
    def read_pods(self) -> tuple[str, ...]:
        """Where reads are served: the replicas, or the primary when there are none."""
        return self.replica_pods or self.primary_pods


@dataclass(frozen=True, slots=True)
class MetricsReading:
    read_qps: Signal
    write_qps: Signal
    read_p99: Signal  # seconds
    write_p99: Signal  # seconds
    replica_lag: Mapping[str, Signal] = field(default_factory=dict)  # replica pod name -> lag seconds
    is_replica: Mapping[str, Signal] = field(default_factory=dict)  # pod name -> the role metric (1 / 0)
    # replica pod name -> lag in bytes; NotConfigured unless objectives.maxReplicationLagBytes is set.
    replica_lag_bytes: Mapping[str, Signal] = field(default_factory=dict)
    # The read load's and the ratio's history (metrics/history.py); empty when not read.
    history: History = field(default_factory=History)
    # The key metrics beyond QPS and latency; NotConfigured where the preset has none.
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    def onto(
        self, pods: Sequence[PodSeen], connections: Mapping[str, int | None] | None = None
    ) -> list[PodSeen]:
        """The pods with what this reading says of each (lag, byte lag, role) and the pooler's
        server connections to each (the tick's, the tests' that run the chain by hand)."""
        missing = Signal.unknown(UnknownReason.NOT_OBSERVED, "no series for this pod")
        held = connections or {}
        return [
            replace(
                p,
                lag=self.replica_lag.get(p.name, missing),
                lag_bytes=self.replica_lag_bytes.get(p.name, missing),
                is_replica=self.is_replica.get(p.name, missing),
                connections=held.get(p.name),
            )
            for p in pods
        ]

    def sides(self, write_pods: tuple[str, ...] | None) -> SidesSeen:
        """The workload's signals for `core.assemble`, read from the pods in `write_pods`."""
        return SidesSeen(
            self.read_qps, self.write_qps, self.read_p99, self.write_p99, write_pods, self.diagnostics
        )

    @classmethod
    def all_unknown(cls, signal: Signal, pods: Sequence[str]) -> MetricsReading:
        """Every signal `signal`, every pod's lag and role too."""
        each = {pod: signal for pod in pods}
        everything = Diagnostics(*([signal] * len(Diagnostics.__dataclass_fields__)))
        return cls(signal, signal, signal, signal, each, each, replica_lag_bytes=each, diagnostics=everything)


class MetricsSource(Protocol):
    async def read(self, queries: Sequence[WorkloadQuery], now: float) -> dict[str, MetricsReading]:
        """One reading per query key; bounded in time by each workload's prometheus.timeout."""
        ...

    async def close(self) -> None: ...
