"""What one tick saw: the signals from Prometheus and the replicas from Kubernetes, as plain data.

The observe adapters (`rwscaler.metrics`, `rwscaler.kube`, `rwscaler.pooler`) fill it in; the
simulator builds it from its model. A signal that could not be read carries no value and a reason:
unknown is never 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class Aggregation(StrEnum):
    """How a latency signal was computed: a true percentile, or an average stood in for one."""

    PERCENTILE = "percentile"
    AVERAGE = "average"


class UnknownReason(StrEnum):
    """Why a signal has no value; each becomes a distinct MetricsAvailable=False reason."""

    UNREACHABLE = "PrometheusUnreachable"
    TIMEOUT = "QueryTimeout"
    HTTP_ERROR = "QueryHTTPError"
    QUERY_ERROR = "QueryError"
    EMPTY = "EmptyResult"
    NOT_A_NUMBER = "NotANumber"
    MULTIPLE_SERIES = "MultipleSeries"
    STALE = "StaleSample"
    NOT_CONFIGURED = "NotConfigured"
    NOT_OBSERVED = "NotObserved"


@dataclass(frozen=True, slots=True)
class Signal:
    """One scalar signal. `value` is None exactly when the signal is unknown."""

    value: float | None
    reason: UnknownReason | None = None
    message: str = ""
    aggregation: Aggregation = Aggregation.PERCENTILE

    def __post_init__(self) -> None:
        if self.value is not None and not math.isfinite(self.value):
            # A NaN or Inf that slipped past the adapter is still unknown, never a number.
            object.__setattr__(self, "value", None)
            object.__setattr__(self, "reason", UnknownReason.NOT_A_NUMBER)
        if self.value is None and self.reason is None:
            object.__setattr__(self, "reason", UnknownReason.NOT_OBSERVED)

    @property
    def known(self) -> bool:
        return self.value is not None

    @classmethod
    def of(cls, value: float, aggregation: Aggregation = Aggregation.PERCENTILE) -> Signal:
        return cls(value=value, aggregation=aggregation)

    @classmethod
    def unknown(cls, reason: UnknownReason, message: str = "") -> Signal:
        return cls(value=None, reason=reason, message=message)


@dataclass(frozen=True, slots=True)
class ReplicaObservation:
    """One read-replica pod: its readiness from Kubernetes, its lag from Prometheus."""

    name: str
    # The pod's place in the scale target's removal order: it stays while the read replicas
    # number more than `rank`, so a scale-in to n removes the pods of rank n and above. For a
    # StatefulSet that is the ordinal (minus one when the set also runs the primary); for a
    # CloudNativePG Cluster, the order CloudNativePG removes instances in (kube/targets).
    rank: int
    ready: bool
    lag: Signal
    synchronous: bool = False
    # Server connections the pooler still holds to this replica; None when the pooler cannot say.
    connections: int | None = None
    # WAL not yet replayed, in bytes: read only when objectives.maxReplicationLagBytes is set.
    lag_bytes: Signal = field(
        default_factory=lambda: Signal.unknown(UnknownReason.NOT_CONFIGURED, "no byte lag objective")
    )
    # False for a replica outside the scale target (a former primary of the pair layout's
    # primary StatefulSet, back as a replica): it serves reads, but is none of the target's count.
    in_target: bool = True


def _not_read() -> Signal:
    return Signal.unknown(UnknownReason.NOT_CONFIGURED, "not read by this preset")


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """The seed's key metrics beyond QPS and latency (docs/diagnosis.md), where exporters give them.

    Each is unknown (NotConfigured) where the preset cannot read it; core/diagnosis.py reads them:
    the byte ratio and the CPU split are shown, the pools, locks and rows per write also sharpen
    the diagnosis."""

    read_bytes: Signal = field(default_factory=_not_read)  # bytes/s read by queries on the read servers
    write_bytes: Signal = field(
        default_factory=_not_read
    )  # bytes/s of WAL (or binlog) written by the primary
    read_cpu: Signal = field(default_factory=_not_read)  # seconds/s spent executing reads
    write_cpu: Signal = field(default_factory=_not_read)  # seconds/s spent executing writes
    read_pool_active: Signal = field(default_factory=_not_read)  # pooler server connections in use, read side
    write_pool_active: Signal = field(default_factory=_not_read)
    read_pool_waiting: Signal = field(default_factory=_not_read)  # clients waiting for a read connection
    write_pool_waiting: Signal = field(default_factory=_not_read)
    lock_waits: Signal = field(default_factory=_not_read)  # sessions waiting for a lock on the primary
    deadlocks: Signal = field(default_factory=_not_read)  # deadlocks per second on the primary
    rows_per_write: Signal = field(default_factory=_not_read)  # rows written per write statement


@dataclass(frozen=True, slots=True)
class Season:
    """Read QPS one season ago, from Prometheus's history (None: not recorded or not readable).

    `then` is the 5-minute average read QPS at `now - period_s`; `peak_up` the highest
    5-minute trailing average read QPS over `[now - period_s, now - period_s + horizon_up_s]`,
    and `peak_down` the highest over `[now - period_s, now - period_s + horizon_down_s]` (the
    stretches are in `History`, from forecast.horizons)."""

    period_s: float
    then: float | None = None
    peak_up: float | None = None
    peak_down: float | None = None


@dataclass(frozen=True, slots=True)
class RatioHistory:
    """Read:write ratios from Prometheus's history, for the trend rules (ratio_trend.py).

    `points`: the ratio (total reads / total writes) over each period of the trend window,
    oldest first, the last one ending now; None where a period is not (wholly) recorded.
    `recent`: the ratio over the last `shift_s`; `recent_before`: over the same span one period
    earlier (so a weekly cycle compares like with like)."""

    period_s: float
    points: tuple[float | None, ...] = ()
    shift_s: float = 0.0
    recent: float | None = None
    recent_before: float | None = None


@dataclass(frozen=True, slots=True)
class History:
    """What Prometheus's history says, read by the metrics adapter (the simulator: its trace)."""

    horizon_up_s: float = 0.0
    horizon_down_s: float = 0.0
    seasons: tuple[Season, ...] = ()
    ratios: RatioHistory | None = None
    # The 5-minute average read QPS now: the same average as `Season.then`, so that today's
    # load and the load one season ago are compared like with like (the seasons' growth).
    now_qps: float | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything `decide` needs to know about the world at one tick."""

    read_qps: Signal
    write_qps: Signal
    read_p99: Signal  # seconds
    write_p99: Signal  # seconds
    current_replicas: int  # read replicas: the scale target's count, less the primary when it counts it
    primary: str  # the primary's endpoint name (pod name), the read pool's fallback
    replicas: tuple[ReplicaObservation, ...] = field(default_factory=tuple)
    # Prometheus's history of the read load and the ratio (seasonal forecast, trend rules);
    # empty when not read (a custom query source, a simulator trace without it).
    history: History = field(default_factory=History)
    # The primary's rank in the scale target's removal order (as ReplicaObservation.rank): a
    # scale-in to `primary_rank` or fewer would remove it. None: the target never removes it
    # (it runs apart, or the target never picks the primary, as CloudNativePG).
    primary_rank: int | None = None
    # Why the primary is not known for sure (no pod is primary, several are, or a pod's role
    # label and role metric disagree): scaling holds. None: exactly one primary.
    roles_problem: str | None = None
    # False when rwscaler does not know which pods the scale target removes on a scale-in (a
    # kind it has no module for): it does not scale in, since it could remove the primary.
    removal_order_known: bool = True
    # The key metrics beyond QPS and latency (pools, locks, bytes, CPU, rows per write).
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    def unknown_signals(self) -> list[tuple[str, Signal]]:
        named = (
            ("readQPS", self.read_qps),
            ("writeQPS", self.write_qps),
            ("readLatencyP99", self.read_p99),
            ("writeLatencyP99", self.write_p99),
        )
        return [(name, s) for name, s in named if not s.known]
