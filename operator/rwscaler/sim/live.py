"""The simulator's model (model.py) run in wall-clock time, as a database an operator can scale.

`make demo` (tools/demo.py) serves it over HTTP as a Prometheus exporter: each second it tells a
`LiveDatabase` which replica pods the cluster shows Ready and which of them are in the read pool
(the EndpointSlice the operator writes), calls `advance` with the time and the load its script
drives, and serves `exposition()` at /metrics. So latency falls when the operator adds a replica
that turns Ready, and a lagging replica's reads stop when the operator takes it out of the pool.

Pure: the caller owns the clock, the cluster and the HTTP server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rwscaler.sim.model import Cluster, ModelParams, Replica, StepResult

# The exporter's metric families, each with its help text (docs/demo.md lists them).
FAMILIES = {
    "demo_db_queries_per_second": ("gauge", "Queries per second the database serves, by side."),
    "demo_db_latency_p99_seconds": ("gauge", "p99 latency of the last second, by side."),
    "demo_db_replication_lag_seconds": ("gauge", "Replication lag of each Ready replica."),
    "demo_db_reads_per_second": ("gauge", "Reads per second each server takes."),
    "demo_db_replicas_ready": ("gauge", "Replica pods the database counts (Ready in the cluster)."),
}


@dataclass(frozen=True, slots=True)
class Load:
    reads: float  # per second
    writes: float


class LiveDatabase:
    """A primary (`<primary>-0`) and the replicas `<replica_set>-<ordinal>` of one namespace."""

    def __init__(
        self,
        params: ModelParams,
        namespace: str,
        primary: str,
        replica_set: str,
        max_lag_s: float,
        now: float,
    ) -> None:
        self.namespace = namespace
        self.primary = f"{primary}-0"
        self.replica_set = replica_set
        self.max_lag_s = max_lag_s
        self.cluster = Cluster(params, [])
        self.load = Load(0.0, 0.0)
        self._t = now
        self._pool: list[int] = []
        self._last: StepResult | None = None

    def follow(self, ready: Iterable[int], pool: Iterable[int] | None) -> None:
        """Match the cluster: `ready` are the ordinals of the Ready replica pods; `pool` the
        ordinals in the read pool, or None when there is no pool yet (reads then go to every
        Ready replica, as a Service with a selector would send them)."""
        ready_set = set(ready)
        kept = [r for r in self.cluster.replicas if r.ordinal in ready_set]
        known = {r.ordinal for r in kept}
        # A replica that just turned Ready starts behind by newReplicaLagSeconds of writes.
        backlog = self.cluster.params.newReplicaLagSeconds * max(self.load.writes, 1.0)
        kept += [Replica(o, ready_at=self._t, backlog=backlog) for o in sorted(ready_set - known)]
        self.cluster.replicas = sorted(kept, key=lambda r: r.ordinal)
        self._pool = sorted(ready_set if pool is None else set(pool) & ready_set)

    def advance(self, now: float, load: Load) -> StepResult:
        """Serve `load` from the last call until `now` and hold the result until the next call."""
        dt = max(now - self._t, 0.0)
        self.load = load
        self._last = self.cluster.step(self._t, dt, load.reads, load.writes, self._pool, self.max_lag_s)
        self._t = now
        return self._last

    @property
    def pool(self) -> list[int]:
        return list(self._pool)

    def exposition(self) -> str:
        """The state of the last `advance` in Prometheus's text format (empty before the first)."""
        last = self._last
        if last is None:
            return ""
        ns = self.namespace
        pod = f"{self.replica_set}-"
        samples: dict[str, list[tuple[dict[str, str], float]]] = {
            "demo_db_queries_per_second": [
                ({"namespace": ns, "side": "read"}, self.load.reads),
                ({"namespace": ns, "side": "write"}, self.load.writes),
            ],
            "demo_db_latency_p99_seconds": [
                ({"namespace": ns, "side": "read"}, last.read_p99),
                ({"namespace": ns, "side": "write"}, last.write_p99),
            ],
            "demo_db_replication_lag_seconds": [
                ({"namespace": ns, "pod": f"{pod}{o}"}, lag) for o, lag in sorted(last.lags.items())
            ],
            "demo_db_reads_per_second": [
                (
                    {
                        "namespace": ns,
                        "pod": self.primary if server == "primary" else pod + server.split("-")[1],
                    },
                    qps,
                )
                for server, qps in sorted(last.reads_by_server.items())
            ],
            "demo_db_replicas_ready": [({"namespace": ns}, float(len(self.cluster.replicas)))],
        }
        lines: list[str] = []
        for name, (kind, text) in FAMILIES.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            for labels, value in samples[name]:
                body = ",".join(f'{k}="{v}"' for k, v in labels.items())
                lines.append(f"{name}{{{body}}} {value:.6g}")
        return "\n".join(lines) + "\n"
