"""The learned read capacity: the per-replica read load at which the read objective broke.

Called by sizing.py on every tick (`update_learned`), and by sizing.py and explain.py to size
with it (`effective_target`). The value and its clock live in Memory (`breach_qps_per_replica`,
`breach_time`), so they survive a restart through the status.

- **Learn.** Read p99 over its objective (level > 1: the objective itself, not the tolerance
  band), writes stable (a write surge slows reads through replay, not through read load), no
  replica starting and no replica joined the pool within the last latency window (settle.py: the
  p99 must describe the pool the load is divided by), and reads to divide (a breach with no
  reads says nothing about read capacity): with a target, at least MIN_LEARNED_SHARE (a quarter)
  of it per replica. The evidence is read QPS / replicas in the pool. It replaces the learned value when lower, or when there is none (or it expired).
- **Confirm.** A new breach at no more than the learned value x (1 + tolerance) restarts its
  clock: the same breaking point, seen again.
- **Contradict.** Read p99 at or under HEALTHY_LEVEL of its objective, writes stable, pool
  settled, while the replicas carry a sustained load (the lower of the read QPS and its 300 s
  average, per replica in the pool) above the learned value x (1 + tolerance): the replicas now
  do better than the learned value says (a faster release, bigger nodes). It is forgotten; the
  next breach learns afresh.
- **Expire.** LEARNED_CAPACITY_TTL_S after it was last learned or confirmed, it is forgotten.
  A value from a status written before the clock existed starts its clock on the next tick.

With `targetReadQPSPerReplica`, the learned value is the effective capacity while it is lower
than the target (`effective_target`), so the breach does not repeat at the next replica count;
without a target it keeps a latency-headroom scale-down from removing a replica the others
could not do without.
"""

from __future__ import annotations

from dataclasses import dataclass

from rwscaler.core.memory import Ewma
from rwscaler.core.trends import SideState, Trend

# A week: a learned breaking point outlives a daily peak and a weekend (the loads that test it
# again), and stops binding a workload a week after the last breach that showed it, by when a
# release or a node change may have moved it. An expiry that comes too early costs one breach.
LEARNED_CAPACITY_TTL_S = 7 * 24 * 3600.0
# A breach while each replica carries under a quarter of targetReadQPSPerReplica is not about read
# capacity (a lock, a bad plan, replay work: something else slows reads); learned from, it would
# size the workload for a load it never had trouble with (at ~0 reads/s: unbounded replicas).
MIN_LEARNED_SHARE = 0.25
# Read p99 at or under 60% of its objective is clearly healthy: far enough under the objective
# that the load carried is no near-breach (the trends' "approaching" starts at 80%).
HEALTHY_LEVEL = 0.6


@dataclass(frozen=True, slots=True)
class Learned:
    qps_per_replica: float | None
    since: float | None  # when it was last learned or confirmed
    event: str | None  # "learned", "confirmed", "forgotten", "expired" or None (nothing new)


def update_learned(
    value: float | None,
    since: float | None,
    *,
    floor: float,
    read: SideState,
    write: SideState,
    read_qps: float,
    read_qps_avg: Ewma | None,
    serving: int,
    settled: bool,
    tolerance: float,
    now: float,
) -> Learned:
    """This tick's learned capacity from the last one and this tick's evidence (rules above)."""
    if value is not None and since is None:
        since = now  # a status written before the clock existed
    if value is not None and since is not None and now - since >= LEARNED_CAPACITY_TTL_S:
        value, since, expired = None, None, True
    else:
        expired = False
    usable = settled and serving > 0 and write.trend is Trend.STABLE and read.level is not None
    if (
        usable
        and read.level is not None
        and read.level > 1.0
        and read_qps > 0
        and read_qps / serving >= floor
    ):
        observed = read_qps / serving
        if value is None or observed < value:
            return Learned(observed, now, "learned")
        if observed <= value * (1.0 + tolerance):
            return Learned(value, now, "confirmed")
    elif usable and value is not None and read.level is not None and read.level <= HEALTHY_LEVEL:
        sustained = min(read_qps, read_qps_avg.slow) if read_qps_avg is not None else read_qps
        if sustained / serving > value * (1.0 + tolerance):
            return Learned(None, None, "forgotten")
    return Learned(value, since, "expired" if expired else None)


def effective_target(target: float | None, learned: float | None) -> float | None:
    """The per-replica capacity to size with: the learned value when lower than the target."""
    if target is None:
        return None
    if learned is not None and 0 < learned < target:
        return learned
    return target
