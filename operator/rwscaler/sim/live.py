"""The simulator's model (model.py) run in wall-clock time, as a database an operator can scale.

`make demo` (tools/demo.py) serves it over HTTP as a Prometheus exporter: each second it tells a
`LiveDatabase` which replica pods the cluster shows Ready and which of them are in the read pool
(the EndpointSlice the operator writes), calls `advance` with the time and the load its script
drives, and serves `exposition()` at /metrics. So latency falls when the operator adds a replica
that turns Ready, and a lagging replica's reads stop when the operator takes it out of the pool.

Lag is the age of the oldest write a replica has not replayed (what PostgreSQL's replay lag
measures), from the backlog the model keeps. The model's own lag (backlog over the current write
rate) is right at a steady rate, but when a write surge stops it would report hours for a backlog
that is seconds old; the demo's surge stops, so it keeps the write history to date the backlog.

Pure: the caller owns the clock, the cluster and the HTTP server.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, replace

from rwscaler.sim.model import Cluster, ModelParams, Replica, StepResult

# The exporter's metric families, each with its help text (docs/demo.md lists them).
FAMILIES = {
    "demo_db_queries_per_second": ("gauge", "Queries per second the database serves, by side."),
    "demo_db_latency_p99_seconds": ("gauge", "p99 latency of the last second, by side."),
    "demo_db_replication_lag_seconds": ("gauge", "Replication lag of each Ready replica."),
    "demo_db_reads_per_second": ("gauge", "Reads per second each server takes."),
    "demo_db_replicas_ready": ("gauge", "Replica pods the database counts (Ready in the cluster)."),
}


HISTORY_S = 600.0


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
        # (time, writes so far) at every step, to date a backlog: the writes not replayed are
        # the last `backlog` of them.
        self._times: list[float] = [now]
        self._written: list[float] = [0.0]

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
        result = self.cluster.step(self._t, dt, load.reads, load.writes, self._pool, self.max_lag_s)
        self._t = now
        self._times.append(now)
        self._written.append(self._written[-1] + load.writes * dt)
        by_ordinal = {r.ordinal: r for r in self.cluster.replicas}
        lags = {o: self._age(by_ordinal[o].backlog) for o in result.lags}
        per_server = load.reads / len(self._pool) if self._pool else 0.0
        stale = sum(per_server for o in self._pool if lags.get(o, 0.0) > self.max_lag_s)
        self._forget(max((r.backlog for r in self.cluster.replicas), default=0.0))
        self._last = replace(result, lags=lags, stale_reads=stale)
        return self._last

    def _age(self, backlog: float) -> float:
        """Seconds since the oldest of the last `backlog` writes was written (plus the lag of a
        replica that keeps up); history is linear between steps."""
        base = self.cluster.params.baseLagSeconds
        if backlog <= 0:
            return base
        target = self._written[-1] - backlog
        i = bisect.bisect_left(self._written, target)
        if i == 0:  # older than the history: as old as the history
            return base + self._t - self._times[0]
        w0, w1 = self._written[i - 1], self._written[i]
        t0, t1 = self._times[i - 1], self._times[i]
        at = t1 if w1 == w0 else t0 + (t1 - t0) * (target - w0) / (w1 - w0)
        return base + self._t - at

    def _forget(self, backlog: float) -> None:
        """Drop the history no backlog reaches back to (keeping one step before it), and older
        than `HISTORY_S` (a replica that turns Ready is dated with it)."""
        needed = bisect.bisect_left(self._written, self._written[-1] - backlog) - 1
        keep_from = min(needed, bisect.bisect_left(self._times, self._t - HISTORY_S) - 1)
        if keep_from > 0:
            del self._times[:keep_from], self._written[:keep_from]

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
