"""The `keda-qps` baseline: what a team that does not run rwscaler would deploy for read replicas.

A KEDA ScaledObject with a Prometheus trigger on the workload's total read QPS, `metricType:
AverageValue` and `threshold` = the workload's own `replicas.targetReadQPSPerReplica`, driving the
HPA KEDA creates with its default behaviour. `policies.make_policy` builds it; the engine calls
`decide` every step. Every ready replica serves reads (a lag-unaware pool: a Service over the
replica pods), as with `hpa-latency`.

What is modelled, and from which source (read for this module; none of their code is copied):

- The HPA's replica calculator for an External metric with an AverageValue target
  (kubernetes/kubernetes `pkg/controller/podautoscaler/replica_calculator.go`,
  `GetExternalPerPodMetricReplicas`): usage ratio = total / (target x current replica count,
  ready or not); within the 0.1 tolerance no change, else desired = ceil(total / target).
  Then the HPA's default behaviour (hpa.py): 300 s scale-down stabilization, scale-up by at most
  max(100%, 4 pods) per 15 s, min/max replicas (KEDA's minReplicaCount/maxReplicaCount, here the
  workload's minReplicas/maxReplicas).
- Polling: KEDA's `pollingInterval` (default 30 s, keda-docs `reference/scaledobject-spec.md`).
  The value the HPA sees is refreshed once per poll; the HPA itself syncs every 15 s on it. This
  is KEDA with `useCachedMetrics: true`; with KEDA's default (false) the metrics server queries
  Prometheus at each HPA sync, which is `KedaQpsPolicy(spec, poll_interval=15.0)`.
- An empty result (and a NaN/Inf value, or a stale series, which an instant query drops): the
  scaler's `ignoreNullValues` defaults to true, and then it reports 0 (kedacore/keda
  `pkg/scalers/prometheus_scaler.go`, `ExecutePromQuery`; keda-docs `scalers/prometheus.md`). The
  HPA then computes 0 replicas wanted, so after the 300 s window the count falls to the minimum.
- A failed query (Prometheus unreachable, timeout, HTTP or query error, several series): the
  scaler returns an error and, with no `fallback` section (it is optional and off by default),
  KEDA propagates no metric to the HPA (keda-docs `reference/scaledobject-spec.md`, "fallback");
  the HPA cannot compute a count and leaves the scale alone (only min/max are enforced) and
  records no recommendation. `fallback` is not modelled.

In the simulator an unknown read QPS whose reason is an empty, NaN or stale result is the empty
case; every other reason (the trace's Prometheus outage is `PrometheusUnreachable`) is the failed
query.
"""

from __future__ import annotations

from rwscaler.core.classify import classify
from rwscaler.core.observation import Observation, Signal, UnknownReason
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.sim.decision import Decision
from rwscaler.sim.hpa import HPA_TOLERANCE, HpaStabilizer, per_pod_recommendation

KEDA_POLLING_INTERVAL_SECONDS = 30.0
HPA_SYNC_PERIOD_SECONDS = 15.0

# Unknown reasons that KEDA's Prometheus scaler sees as an empty (or NaN) result: with the default
# ignoreNullValues it reports 0 for them. Every other reason is a failed query.
EMPTY_RESULT_REASONS = frozenset({UnknownReason.EMPTY, UnknownReason.NOT_A_NUMBER, UnknownReason.STALE})


class NoTargetError(ValueError):
    """keda-qps needs the workload's replicas.targetReadQPSPerReplica (KEDA's threshold)."""


def scaler_value(signal: Signal) -> float | None:
    """What KEDA's Prometheus scaler reports for a read-QPS signal: the value; 0 for an empty,
    NaN or stale result (ignoreNullValues: true); None for a failed query."""
    if signal.value is not None:
        return signal.value
    return 0.0 if signal.reason in EMPTY_RESULT_REASONS else None


class KedaQpsPolicy:
    name = "keda-qps"

    def __init__(
        self,
        spec: ReadWriteWorkloadSpec,
        poll_interval: float = KEDA_POLLING_INTERVAL_SECONDS,
        sync_period: float = HPA_SYNC_PERIOD_SECONDS,
    ) -> None:
        target = spec.replicas.targetReadQPSPerReplica
        if target is None:
            raise NoTargetError("keda-qps needs replicas.targetReadQPSPerReplica in the workload")
        self.target = target
        self.poll_interval = poll_interval
        self.sync_period = sync_period
        self.hpa = HpaStabilizer(spec.replicas.minReplicas, spec.replicas.maxReplicas)
        self.last_poll: float | None = None
        self.last_sync: float | None = None
        self.value: float | None = None  # the last poll's result; None: the query failed

    def decide(self, index: int, t: float, obs: Observation) -> Decision:
        current = obs.current_replicas
        wclass = classify(obs.read_qps.value, obs.write_qps.value).value
        if self.last_poll is None or t - self.last_poll >= self.poll_interval:
            self.last_poll = t
            self.value = scaler_value(obs.read_qps)
        if self.last_sync is not None and t - self.last_sync < self.sync_period:
            return Decision(current, None, wclass)
        self.last_sync = t
        if self.value is None:  # no metric for the HPA: it keeps the scale, within min/max
            self.hpa.seed(t, current)
            return Decision(self.hpa.clamp(current), None, wclass)
        recommendation = per_pod_recommendation(self.value, self.target, current, HPA_TOLERANCE)
        return Decision(self.hpa.desired(t, current, recommendation), None, wclass)
