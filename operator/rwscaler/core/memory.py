"""What `decide` remembers between ticks, as plain data that lives in the resource's status.

Everything here round-trips through JSON (`to_status` / `from_status`), so an operator that
restarts continues with the same stabilization history, hysteresis and trends. Nothing here is
derived from the cluster; it is only what cannot be observed again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import TypeAdapter, ValidationError


@dataclass(frozen=True, slots=True)
class ReplicaMemory:
    in_pool: bool = False
    # Since when the replica's lag has stayed under the re-entry threshold (None: it is not).
    healthy_since: float | None = None
    # It left the pool and has not come back: re-entry needs the full hysteresis.
    left_pool: bool = False


@dataclass(frozen=True, slots=True)
class Drain:
    """A scale-in under way: these replicas left the pool and are drained before they go."""

    target_replicas: int
    started: float
    replicas: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ewma:
    """A pair of exponentially weighted moving averages of one signal (fast and slow)."""

    fast: float
    slow: float
    since: float  # when the first sample arrived (trends need the slow average warmed up)


@dataclass(frozen=True, slots=True)
class Memory:
    version: int = 1
    last_tick: float | None = None
    # (time, unstabilized desired replicas): the HPA-style recommendation history.
    recommendations: tuple[tuple[float, int], ...] = ()
    last_scale_time: float | None = None
    last_scale_direction: int = 0  # +1 up, -1 down, 0 never
    pool: dict[str, ReplicaMemory] = field(default_factory=dict)
    drain: Drain | None = None
    read_qps: Ewma | None = None
    write_qps: Ewma | None = None
    read_latency: Ewma | None = None
    write_latency: Ewma | None = None
    # Per-replica read QPS at which the read objective broke (learned capacity, see
    # learned_capacity.py): the effective capacity when under targetReadQPSPerReplica, and the
    # floor of a latency-headroom scale-down without one.
    breach_qps_per_replica: float | None = None
    ewma_time: float | None = None
    # When the learned capacity was last learned or confirmed by a breach (its expiry clock).
    # None with a learned capacity: a status from before this field; the clock starts at the next tick.
    breach_time: float | None = None
    # When a replica last joined the read pool: the read p99 measured before the new pool served
    # a whole measurement window says nothing about it (settle.py).
    pool_grew_at: float | None = None
    # The replicas in the read pool as last decided (a replica drained for a scale-in is out of
    # it while its pool memory still says in_pool). None: a status from before this field.
    read_pool: tuple[str, ...] | None = None

    def checkpoint_key(self) -> tuple[Any, ...]:
        """What of this memory a restarted operator must find in status: everything but the moving
        averages (which settle again within minutes) and the clock of the last tick; and of the
        recommendation history its runs (the value in force when the window begins, then each
        change and when), because the repeats of a run are restored by `resumed`. The tick writes
        status at once when this changes (rwscaler.report.significant_change)."""
        recs = self.recommendations
        changes = tuple((t, r) for (t, r), (_, before) in zip(recs[1:], recs, strict=False) if r != before)
        return (
            self.version,
            recs[0][1] if recs else None,
            changes,
            self.last_scale_time,
            self.last_scale_direction,
            tuple(sorted(self.pool.items())),
            self.drain,
            self.breach_qps_per_replica,
            self.breach_time,
            self.pool_grew_at,
            self.read_pool,
        )

    def resumed(self, now: float) -> Memory:
        """This memory read back from a status written up to a refresh period ago: the last
        recommendation held until `now` (a change would have been written at once), so the
        stabilization windows count it as the ticks since would have."""
        if not self.recommendations:
            return self
        return replace(self, recommendations=(*self.recommendations, (now, self.recommendations[-1][1])))

    def to_status(self) -> dict[str, Any]:
        result: dict[str, Any] = _ADAPTER.dump_python(self, mode="json")
        return result

    @classmethod
    def from_status(cls, data: object) -> Memory:
        """Memory from status; anything unreadable starts afresh rather than crashing the operator."""
        if not isinstance(data, dict):
            return cls()
        try:
            return _ADAPTER.validate_python(data)
        except ValidationError:
            return cls()


_ADAPTER = TypeAdapter(Memory)
