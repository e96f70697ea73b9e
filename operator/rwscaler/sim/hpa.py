"""The Kubernetes HPA controller's arithmetic, as the simulator's HPA-based baselines use it.

`policies.HpaLatencyPolicy` (read p99 against the objective) and `keda_qps.KedaQpsPolicy` (read
QPS per replica, as KEDA's Prometheus scaler feeds the HPA) both turn a metric into a raw
recommendation with the HPA's replica calculator and then apply the controller's default
`autoscaling/v2` behaviour through `HpaStabilizer`. Pure arithmetic; no clock, no I/O.

What is modelled (kubernetes/kubernetes `pkg/controller/podautoscaler/replica_calculator.go` and
`horizontal.go`, and the HPA documentation's "default behavior"):

- usage ratio within the tolerance (default 0.1) of 1: no change;
- per-pod (AverageValue) target: desired = ceil(total / target per pod);
- ratio target (a Value or utilization): desired = ceil(current x ratio);
- scale-down stabilization: the highest recommendation of the last 300 s, the history seeded
  with the current count at the HPA's first sync (`recordInitialRecommendation`), so a new HPA
  waits a whole window before its first scale-down;
- scale-up stabilization 0 s, and at most max(100%, 4 pods) more per 15 s period;
- scale-down policy 100% per 15 s (no limit below the stabilized recommendation);
- minReplicas/maxReplicas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

HPA_TOLERANCE = 0.1
HPA_SCALE_DOWN_WINDOW_SECONDS = 300.0
HPA_SCALE_UP_PERCENT = 100
HPA_SCALE_UP_PODS = 4


def per_pod_recommendation(total: float, target_per_pod: float, current: int, tolerance: float) -> int:
    """The replica calculator for an AverageValue target: `current` while total / (target x
    current) is within the tolerance of 1, else ceil(total / target)."""
    if current > 0 and abs(1.0 - total / (target_per_pod * current)) <= tolerance:
        return current
    return math.ceil(total / target_per_pod)


def ratio_recommendation(ratio: float, current: int, tolerance: float) -> int:
    """The replica calculator for a ratio (metric / target): `current` within the tolerance,
    else ceil(current x ratio), and at least one replica when the ratio asks for more."""
    if abs(ratio - 1.0) <= tolerance:
        return current
    return max(math.ceil(current * ratio), 1 if ratio > 1 else 0)


@dataclass
class HpaStabilizer:
    """The HPA controller's default behaviour between the raw recommendation and the scale."""

    min_replicas: int
    max_replicas: int
    down_window: float = HPA_SCALE_DOWN_WINDOW_SECONDS
    history: list[tuple[float, int]] = field(default_factory=list)
    seeded: bool = False

    def seed(self, t: float, current: int) -> None:
        """At the first sync, whether or not the metric could be read, the history starts with
        the current count."""
        if not self.seeded:
            self.seeded = True
            self.history.append((t, current))

    def clamp(self, n: int) -> int:
        return min(max(n, self.min_replicas), self.max_replicas)

    def desired(self, t: float, current: int, recommendation: int) -> int:
        """Record this sync's recommendation and return the count to scale to.

        Decisions at least one 15 s period apart each start a new rate-limit period, so the
        scale-up limit counts from `current`."""
        self.seed(t, current)
        self.history = [(s, r) for s, r in self.history if t - s < self.down_window]
        self.history.append((t, recommendation))
        if recommendation > current:
            limit = max(current * (100 + HPA_SCALE_UP_PERCENT) // 100, current + HPA_SCALE_UP_PODS)
            return self.clamp(min(recommendation, limit))
        stabilized = max(r for _, r in self.history)
        return self.clamp(min(stabilized, current))
