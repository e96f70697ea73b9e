"""The physics of the simulated database: one documented model for every policy.

A primary takes all writes; N read replicas take the reads routed to them. Per step of length dt:

Utilization
  replica i:  u_i = reads_i / replicaReadCapacity + applyCpuShare x writes / replicaApplyCapacity
  primary:    u_p = writes / (primaryWriteCapacity x (1 - replicationOverheadPerReplica x N))
                    + reads_on_primary / replicaReadCapacity
  Replay work lands on every replica whatever the replica count, and every replica costs the
  primary a WAL sender: adding replicas under a write surge makes the write side worse.

Latency (queueing approximation)
  p99(u) = base / (1 - u) for u < 0.99 (an M/M/1 response time scales with 1/(1 - rho));
  beyond, p99 = base x 100 x (1 + 10 (u - 0.99)): an overloaded server's latency keeps growing.
  Read p99 is the worst p99 among the servers that received reads; write p99 is the primary's.

Replication lag
  replica i replays at most  a_i = replicaApplyCapacity x slowdown_i(t) x (1 - applyReadContention x min(read_u_i, 1))
  writes/s (replay competes with reads for I/O); its backlog B_i grows by (writes - a_i) x dt
  when writes outpace replay and shrinks otherwise; lag_i = baseLagSeconds + B_i / max(writes, 1).
  slowdown_i(t) is 1 except during a scenario's replica slowdowns (a lag storm).

Provisioning
  a new replica is ready provisioningSeconds after it was asked for, with a backlog worth
  newReplicaLagSeconds of writes it must replay before it is caught up. It starts replaying the
  moment it is ready, even in the middle of a step; it serves reads from the next step on.

The step
  Everything above is evaluated once per step and held for the whole step: the load, the read
  pool, the latencies (a step over the objective counts dt of violation). Policies decide at the
  start of a step on what was seen at the end of the previous one, so a policy reacts one step
  late at best, and a replica asked for serves reads a step after it is ready at the earliest.
  Coarse steps (300-600 s) are fine for slow patterns; spikes need 15 s steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

P99_KNEE = 0.99


class Slowdown(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    replica: int = Field(ge=0, description="Replica ordinal whose replay slows down.")
    start: float = Field(ge=0, description="Seconds from the start.")
    end: float = Field(ge=0)
    applyFactor: float = Field(gt=0, le=1, description="Fraction of its replay capacity left.")


class ModelParams(BaseModel):
    """The model's parameters, with documented defaults (YAML keys are these names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    replicaReadCapacity: float = Field(
        1000.0, gt=0, description="Reads/s one replica serves at full utilization."
    )
    primaryWriteCapacity: float = Field(
        3000.0, gt=0, description="Writes/s the primary serves at full utilization."
    )
    replicaApplyCapacity: float = Field(
        4000.0, gt=0, description="Writes/s a replica replays before lag grows."
    )
    applyCpuShare: float = Field(
        0.25, ge=0, le=1, description="Share of a replica's capacity replay uses at full replay."
    )
    applyReadContention: float = Field(0.3, ge=0, lt=1, description="How much read load slows replay.")
    replicationOverheadPerReplica: float = Field(
        0.01, ge=0, lt=0.1, description="Primary capacity per replica."
    )
    readBaseLatencyMs: float = Field(5.0, gt=0, description="Read p99 of an idle server.")
    writeBaseLatencyMs: float = Field(4.0, gt=0, description="Write p99 of an idle primary.")
    baseLagSeconds: float = Field(0.05, ge=0, description="Lag of a replica that keeps up.")
    provisioningSeconds: float = Field(120.0, ge=0, description="From scale-up to a ready replica.")
    newReplicaLagSeconds: float = Field(
        30.0, ge=0, description="Backlog a new replica starts with, in seconds."
    )
    initialReplicas: int = Field(2, ge=0, description="Replicas at the start.")
    slowdowns: tuple[Slowdown, ...] = Field((), description="Replica replay slowdowns (scenario events).")

    def normalized(self, read_capacity: float) -> ModelParams:
        """The same database at another scale: every capacity multiplied by one factor so that a
        replica serves `read_capacity` reads/s. Latencies (a function of utilization) and lag in
        seconds (backlog over write rate) are unchanged, so this is the model a load scaled by
        the inverse factor would meet: a calibrated model measured at 13,700 reads/s per replica
        runs the built-in scenarios, written for about 1,000/s, without rewriting them."""
        k = read_capacity / self.replicaReadCapacity
        return self.model_copy(
            update={
                "replicaReadCapacity": read_capacity,
                "primaryWriteCapacity": self.primaryWriteCapacity * k,
                "replicaApplyCapacity": self.replicaApplyCapacity * k,
            }
        )

    @classmethod
    def from_yaml(cls, path: Path) -> ModelParams:
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of model parameters")
        return cls.model_validate(data)


def p99(base_ms: float, utilization: float) -> float:
    """p99 latency in seconds at a utilization (the queueing approximation above)."""
    if utilization < P99_KNEE:
        return base_ms / 1000.0 / (1.0 - utilization)
    return base_ms / 1000.0 * 100.0 * (1.0 + 10.0 * (utilization - P99_KNEE))


@dataclass
class Replica:
    ordinal: int
    ready_at: float
    backlog: float  # writes not yet replayed

    @property
    def name(self) -> str:
        return f"replica-{self.ordinal}"


@dataclass(frozen=True)
class StepResult:
    read_p99: float
    write_p99: float
    lags: dict[int, float]  # ordinal -> lag seconds (ready replicas)
    stale_reads: float  # reads/s served by replicas over the lag objective
    reads_by_server: dict[str, float]


@dataclass
class Cluster:
    params: ModelParams
    replicas: list[Replica] = field(default_factory=list)

    @classmethod
    def start(cls, params: ModelParams) -> Cluster:
        return cls(params, [Replica(i, ready_at=0.0, backlog=0.0) for i in range(params.initialReplicas)])

    def ready(self, t: float) -> list[Replica]:
        return [r for r in self.replicas if r.ready_at <= t]

    def scale_to(self, n: int, t: float, writes: float) -> None:
        """Add replicas (ready after provisioning) or remove the highest ordinals."""
        self.replicas.sort(key=lambda r: r.ordinal)
        while len(self.replicas) > n:
            self.replicas.pop()
        next_ordinal = len(self.replicas)
        while len(self.replicas) < n:
            backlog = self.params.newReplicaLagSeconds * max(writes, 1.0)
            self.replicas.append(Replica(next_ordinal, t + self.params.provisioningSeconds, backlog))
            next_ordinal += 1

    def lag(self, r: Replica, writes: float) -> float:
        return self.params.baseLagSeconds + r.backlog / max(writes, 1.0)

    def _slowdown(self, ordinal: int, t: float) -> float:
        factor = 1.0
        for s in self.params.slowdowns:
            if s.replica == ordinal and s.start <= t < s.end:
                factor = min(factor, s.applyFactor)
        return factor

    def step(
        self, t: float, dt: float, reads: float, writes: float, pool: list[int], max_lag: float
    ) -> StepResult:
        """Serve one step of load with reads spread evenly over `pool` (replica ordinals; empty
        means the primary serves reads) and advance replication."""
        p = self.params
        by_ordinal = {r.ordinal: r for r in self.ready(t)}
        serving = [by_ordinal[o] for o in pool if o in by_ordinal]
        serving_ordinals = {r.ordinal for r in serving}
        per_server = reads / len(serving) if serving else 0.0
        reads_on_primary = 0.0 if serving else reads
        apply_u = p.applyCpuShare * writes / p.replicaApplyCapacity
        write_capacity = p.primaryWriteCapacity * max(
            1.0 - p.replicationOverheadPerReplica * len(self.replicas), 0.05
        )
        u_primary = writes / write_capacity + reads_on_primary / p.replicaReadCapacity
        read_p99s = (
            [p99(p.readBaseLatencyMs, per_server / p.replicaReadCapacity + apply_u)] if serving else []
        )
        if reads_on_primary > 0:
            read_p99s.append(p99(p.readBaseLatencyMs, u_primary))
        stale = sum(per_server for r in serving if self.lag(r, writes) > max_lag)
        for r in self.replicas:
            if r.ready_at >= t + dt and dt > 0:
                continue
            # A replica that becomes ready during the step replays for the rest of it (with a
            # coarse step, a new replica would otherwise start replaying a whole step late).
            replaying = dt if r.ready_at <= t else t + dt - r.ready_at
            read_u = per_server / p.replicaReadCapacity if r.ordinal in serving_ordinals else 0.0
            replay = (
                p.replicaApplyCapacity
                * self._slowdown(r.ordinal, t)
                * (1.0 - p.applyReadContention * min(read_u, 1.0))
            )
            r.backlog = max(0.0, r.backlog + (writes - replay) * replaying)
        lags = {r.ordinal: self.lag(r, writes) for r in self.ready(t)}
        reads_by_server = {r.name: per_server for r in serving}
        if reads_on_primary:
            reads_by_server["primary"] = reads_on_primary
        return StepResult(
            read_p99=max(read_p99s) if read_p99s else p99(p.readBaseLatencyMs, apply_u),
            write_p99=p99(p.writeBaseLatencyMs, u_primary),
            lags=lags,
            stale_reads=stale,
            reads_by_server=reads_by_server,
        )

    def min_replicas_for(self, reads: float, writes: float, objective: float, max_replicas: int) -> int:
        """Fewest serving replicas that keep read p99 under the objective at this load (oracle)."""
        p = self.params
        apply_u = p.applyCpuShare * writes / p.replicaApplyCapacity
        for n in range(1, max_replicas + 1):
            if p99(p.readBaseLatencyMs, reads / n / p.replicaReadCapacity + apply_u) <= objective:
                return n
        return max_replicas
