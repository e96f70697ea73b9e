"""What the scale target and the roles allow of a stabilized count: never remove the primary.

Called by `decide` right after `sizing.stabilize`, so the operator and the simulator keep the
same guards. Three, each a `ScalingLimited` reason and a reason in the plan:

- `RoleUnknown`: no pod is the primary, several are, or a pod's role label and role metric
  disagree (core/roles.py). Nothing is known for sure about the write side: hold the count.
- `PrimaryWouldBeRemoved`: the target removes pods by rank (a StatefulSet: highest ordinal
  first) and the primary's pod is among those a scale-in would remove. Scale in only as far as
  keeps it (to `primary_rank + 1`), or not at all.
- `RemovalOrderUnknown`: the target is a kind whose choice of pod rwscaler cannot foresee, so
  any scale-in might remove the primary: no scale-in (scale-up is safe).
"""

from __future__ import annotations

from dataclasses import replace

from rwscaler.core.observation import Observation
from rwscaler.core.plan import Reason
from rwscaler.core.sizing import Stabilized
from rwscaler.core.vocabulary import Rule


def _limit(stable: Stabilized, desired: int, rule: Rule, message: str) -> Stabilized:
    reason = Reason(rule, message, (("desired", stable.desired), ("kept", desired)))
    return replace(
        stable,
        desired=desired,
        limited=(rule.value, *stable.limited),
        reasons=(*stable.reasons, reason),
        detail=message,
    )


def guard_scale(obs: Observation, stable: Stabilized) -> Stabilized:
    """`stable` with its count held or raised where scaling would be unsafe for the primary."""
    current, desired = obs.current_replicas, stable.desired
    if obs.roles_problem is not None:
        # Said even when nothing would change: the roles are what a user must look at.
        return _limit(stable, current, Rule.ROLE_UNKNOWN, f"holding {current} replicas: {obs.roles_problem}")
    if desired >= current:
        return stable
    if not obs.removal_order_known:
        return _limit(
            stable,
            current,
            Rule.REMOVAL_ORDER_UNKNOWN,
            f"not scaling in {current} -> {desired}: rwscaler does not know which pod this scale "
            "target removes, and it could be the primary",
        )
    if obs.primary_rank is not None and desired <= obs.primary_rank:
        kept = obs.primary_rank + 1
        how = f"scaling in only to {kept}" if kept < current else "not scaling in"
        return _limit(
            stable,
            min(kept, current),
            Rule.PRIMARY_WOULD_BE_REMOVED,
            f"{how}: {current} -> {desired} would remove the primary {obs.primary}, which the scale "
            f"target removes at {obs.primary_rank} replicas or fewer",
        )
    return stable
