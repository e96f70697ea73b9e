"""The seed's key metrics beyond QPS and latency, read where they sharpen the diagnosis. Pure.

Called by `decide` (after the latency sides are judged, before sizing) and by the status
renderer (`rwscaler.report`, through `key_metrics`: status.observed.keyMetrics). The rules, with their thresholds, are in
docs/diagnosis.md; keep the two in step:

- **Read pool saturated**: clients waiting for a read pool connection (the pooler's average over
  the query window) are read capacity running out before p99 rises: the read side is RISING and
  breached, and the sizing steps up a replica as it does for a latency breach.
- **Lock contention**: sessions waiting for a lock on the primary, or deadlocks, point at the
  write side: it is RISING with cause LockContention. That is never a reason to add replicas (a
  rising write side blocks the latency step, and the capacity model adds only for reads).
- **Batch writes**: write statements that change about one row each at a high rate: each pays a
  round trip, a commit and a WAL flush; batching 10-100 rows per statement or transaction cuts
  that 10-100x (the seed's section 3b). A recommendation, never an action.

Unknown metrics (not read by the preset, or missing) never fire a rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rwscaler.core.observation import Diagnostics, Observation, Signal
from rwscaler.core.plan import Reason
from rwscaler.core.status import StatusKeyMetrics
from rwscaler.core.trends import SideState, Trend
from rwscaler.core.vocabulary import Rule

# Clients waiting for a read pool connection, averaged over the query window: half a client on
# average means a queue for half the window, not one unlucky moment.
POOL_WAITING_MIN = 0.5
# Sessions waiting for a lock on the primary, averaged over the window (same reading).
LOCK_WAITS_MIN = 0.5
# Any deadlock in the window counts: each one aborted a transaction.
DEADLOCKS_MIN_PER_S = 0.0
# "About one row" per write statement, and "a high rate" of them.
BATCH_ROWS_MAX = 1.5
BATCH_MIN_WRITES_PER_S = 100.0
# The seed's section 3b: batching 10-100 rows per commit is 10-100x fewer commits and syncs.
BATCH_GAIN = "10-100x"


@dataclass(frozen=True, slots=True)
class Diagnosis:
    read: SideState
    write: SideState
    reasons: tuple[Reason, ...]
    lock_contention: str | None  # the words, when the write side is contended
    batch_writes: str | None  # the recommendation's words, when writes should be batched


def diagnose(obs: Observation, read: SideState, write: SideState) -> Diagnosis:
    """The sides as the key metrics sharpen them, and the reasons for each rule that fired."""
    d = obs.diagnostics
    reasons: list[Reason] = []
    waiting = d.read_pool_waiting.value
    if waiting is not None and waiting >= POOL_WAITING_MIN:
        words = (
            f"{waiting:.1f} clients on average wait for a read pool connection"
            f"{_active_words(d.read_pool_active)}: read capacity is running out"
            + ("" if read.breached else " before read p99 breaches")
        )
        reasons.append(Reason(Rule.READ_POOL_SATURATED, words, (("readPoolWaiting", waiting),)))
        read = replace(read, trend=Trend.RISING, breached=True, cause=Rule.READ_POOL_SATURATED.value)
    contention = _lock_words(d)
    if contention is not None:
        reasons.append(
            Reason(
                Rule.LOCK_CONTENTION,
                f"{contention} on the primary: the write side is the bottleneck; replicas are not added for it",
                (("lockWaits", d.lock_waits.value), ("deadlocksPerSecond", d.deadlocks.value)),
            )
        )
        write = replace(write, trend=Trend.RISING, cause=Rule.LOCK_CONTENTION.value)
    batch = _batch_words(d, obs.write_qps)
    if batch is not None:
        reasons.append(
            Reason(
                Rule.BATCH_WRITES,
                batch,
                (("rowsPerWrite", d.rows_per_write.value), ("writeQPS", obs.write_qps.value)),
            )
        )
    return Diagnosis(read, write, tuple(reasons), contention, batch)


def _active_words(active: Signal) -> str:
    return "" if active.value is None else f" ({active.value:.0f} server connections busy)"


def _lock_words(d: Diagnostics) -> str | None:
    waits, deadlocks = d.lock_waits.value, d.deadlocks.value
    parts = []
    if waits is not None and waits >= LOCK_WAITS_MIN:
        parts.append(f"{waits:.1f} sessions on average wait for locks")
    if deadlocks is not None and deadlocks > DEADLOCKS_MIN_PER_S:
        parts.append(f"{deadlocks * 60:.1f} deadlocks per minute")
    return " and ".join(parts) or None


def _batch_words(d: Diagnostics, write_qps: Signal) -> str | None:
    rows, writes = d.rows_per_write.value, write_qps.value
    if rows is None or writes is None or rows > BATCH_ROWS_MAX or writes < BATCH_MIN_WRITES_PER_S:
        return None
    return (
        f"writes change {rows:.2f} rows each at {writes:.0f}/s: each pays a round trip, a commit and a "
        f"WAL flush; batching 10-100 rows per statement or transaction cuts that {BATCH_GAIN}"
    )


def _ratio(a: float | None, b: float | None) -> str | None:
    if a is None or b is None:
        return None
    if b <= 0:
        return "inf" if a > 0 else None
    ratio = a / b
    return f"{ratio:.0f}" if ratio >= 100 else f"{ratio:.1f}" if ratio >= 1 else f"{ratio:.2g}"


def _pool(active: Signal, waiting: Signal, size: int | None) -> str | None:
    if active.value is None and waiting.value is None:
        return None
    busy = "unknown" if active.value is None else f"{active.value:.0f}"
    of = f"/{size}" if size is not None else ""
    queue = "unknown" if waiting.value is None else f"{waiting.value:.1f}"
    return f"{busy}{of} server connections busy, {queue} clients waiting"


def key_metrics(
    d: Diagnostics, read_pool_size: int | None, write_pool_size: int | None
) -> StatusKeyMetrics | None:
    """What status.observed.keyMetrics shows (None: nothing known); the pool sizes are rwscaler's."""
    read_cpu, write_cpu = d.read_cpu.value, d.write_cpu.value
    share = None
    if read_cpu is not None and write_cpu is not None and read_cpu + write_cpu > 0:
        share = f"{100 * read_cpu / (read_cpu + write_cpu):.0f}%"
    shown = StatusKeyMetrics(
        readWriteByteRatio=_ratio(d.read_bytes.value, d.write_bytes.value),
        readCPUShare=share,
        readPool=_pool(d.read_pool_active, d.read_pool_waiting, read_pool_size),
        writePool=_pool(d.write_pool_active, d.write_pool_waiting, write_pool_size),
        lockWaits=None if d.lock_waits.value is None else f"{d.lock_waits.value:.1f}",
        deadlocksPerMinute=None if d.deadlocks.value is None else f"{d.deadlocks.value * 60:.1f}",
        rowsPerWrite=None if d.rows_per_write.value is None else f"{d.rows_per_write.value:.2f}",
    )
    return shown if shown.model_dump(exclude_none=True) else None
