"""Whether the read p99 has seen the read pool as it is now; called by decide.py and sizing.py.

The read p99 is a percentile over a rate window (the metrics reader uses max(2 x
`behavior.intervalSeconds`, 60 s)), so for one window after a replica joins the read pool it
still describes the smaller pool of the minute before. A breach measured then is no evidence
that the new pool is short: the latency step waits it out, as it waits for replicas that are
still starting, and no capacity is learned from it. The capacity model (read QPS, which is not
a lagging percentile) keeps acting meanwhile.

A replica is "starting" while it is not ready, or ready but has never joined the pool (warming
up: the warm-up gate keeps it out until its lag is seen caught up).
"""

from __future__ import annotations

from collections.abc import Mapping

from rwscaler.core.memory import ReplicaMemory
from rwscaler.core.observation import Observation

# The shortest rate window of the metrics reader (metrics/prometheus.py, min_rate_window_s):
# the read p99 describes at least the last minute.
LATENCY_WINDOW_MIN_S = 60.0


def latency_window_s(interval_s: float) -> float:
    """How long a read p99 reading looks back: max(2 x the tick interval, LATENCY_WINDOW_MIN_S)."""
    return max(2.0 * interval_s, LATENCY_WINDOW_MIN_S)


def pool_grew(
    previous: tuple[str, ...] | None,
    before: Mapping[str, ReplicaMemory],
    in_pool: tuple[str, ...],
    first_tick: bool,
) -> bool:
    """A replica is in the read pool now that was not on the previous tick (never on the first).

    `previous`: the pool as last decided (a replica drained for a scale-in, then kept, comes
    back into it while its pool memory said in_pool all along); without it (a status from
    before it was kept), the replicas' pool memory says who was in."""
    if first_tick:
        return False
    if previous is not None:
        return any(name not in previous for name in in_pool)
    return any(not (before.get(name) or ReplicaMemory()).in_pool for name in in_pool)


def settling(pool_grew_at: float | None, now: float, interval_s: float) -> bool:
    """The read pool grew less than one latency window ago: the read p99 predates it."""
    return pool_grew_at is not None and now - pool_grew_at < latency_window_s(interval_s)


def starting_replicas(obs: Observation, pool: Mapping[str, ReplicaMemory]) -> int:
    """Replicas asked for that do not serve yet: not ready, or ready and never in the pool."""
    count = 0
    for r in obs.replicas:
        if r.rank >= obs.current_replicas:
            continue  # on its way out after a scale-in
        mem = pool.get(r.name)
        warming = mem is not None and not mem.in_pool and not mem.left_pool
        if not r.ready or warming:
            count += 1
    # The target's pods that exist: its replicas, and the primary when the target runs it (a
    # promotion inside the replica StatefulSet of the pair layout); a former primary outside
    # the target serves reads but is none of them.
    present = sum(1 for r in obs.replicas if r.in_target and r.rank < obs.current_replicas)
    if obs.primary_rank is not None and obs.primary_rank < obs.current_replicas:
        present += 1
    missing = obs.current_replicas - present
    return count + max(missing, 0)
