"""Read and write latency breaches on the real plane: what is scaled, routed, reported and posted."""

from __future__ import annotations

from collections.abc import Callable

from cluster_helpers import (
    PRIMARY_SET,
    READ_OBJECTIVE,
    READ_SERVICE,
    REPLICA_SET,
    SLICE_NAME,
    WRITE_OBJECTIVE,
    Kube,
    Metrics,
    OperatorProcess,
    Signals,
    hold_for,
    replica_pod,
    wait_for,
    workload_spec,
)

NAME = "orders"


def test_read_latency_breach_scales_up_and_the_new_replica_joins_the_pool(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
) -> None:
    signals.set()
    signals.lag(range(3), 0.1)
    spec = workload_spec(
        prometheus.prometheus.url, replicas={"statefulSet": REPLICA_SET, "minReplicas": 1, "maxReplicas": 3}
    )
    kube.create_workload(ns, NAME, spec)
    operator()
    two = [replica_pod(0), replica_pod(1)]
    wait_for(
        "the read pool of both replicas", lambda: kube.slice_pods(ns) == two, last=lambda: kube.slice_pods(ns)
    )
    kube.wait_condition(ns, NAME, "Ready", "True")

    signals.set(read_p99=2 * READ_OBJECTIVE)
    wait_for(
        "ReadCapacityExhausted=True",
        lambda: kube.condition(ns, NAME, "ReadCapacityExhausted").get("status") == "True",
        last=lambda: kube.status(ns, NAME).get("conditions"),
    )
    wait_for(
        "the replica StatefulSet at 3",
        lambda: kube.replicas(ns, REPLICA_SET) == 3,
        last=lambda: kube.replicas(ns, REPLICA_SET),
    )
    assert kube.replicas(ns, PRIMARY_SET) == 1, "the primary is never scaled"
    kube.wait_pods(ns, REPLICA_SET, 3)
    three = [replica_pod(i) for i in range(3)]
    wait_for(
        "the new replica in the EndpointSlice",
        lambda: kube.slice_pods(ns) == three,
        last=lambda: kube.slice_pods(ns),
    )

    # The slice lists exactly those pods, at their (fake) pod IPs, for the selector-less Service.
    ips = kube.pod_ips(ns)
    es = kube.discovery.read_namespaced_endpoint_slice(SLICE_NAME, ns)
    assert sorted(a for e in es.endpoints for a in e.addresses) == sorted(ips[p] for p in three)
    assert es.metadata.labels["kubernetes.io/service-name"] == READ_SERVICE
    assert es.metadata.labels["endpointslice.kubernetes.io/managed-by"] == "rwscaler.io"
    svc = kube.service(ns)
    assert svc is not None and not svc.spec.selector
    assert svc.metadata.owner_references[0].kind == "ReadWriteWorkload"

    status = wait_for(
        "status at 3 replicas",
        lambda: s if (s := kube.status(ns, NAME)).get("replicas", {}).get("current") == 3 else None,
        last=lambda: kube.status(ns, NAME).get("replicas"),
    )
    assert status["lastScaleTime"]
    assert status["observedGeneration"] == 1
    assert status["readEndpoints"] == three
    assert status["observed"]["readLatencyP99"] == "100ms"
    why = " ".join(r["message"] for r in status["decision"]["reasons"])
    assert "read p99" in why
    scaled = [e for e in kube.events(ns, NAME) if e.reason == "ScaledUp"]
    assert len(scaled) == 1, [e.message for e in scaled]
    assert "2 -> 3" in scaled[0].message and "read p99" in scaled[0].message
    assert any(e.reason == "ReadPoolChanged" for e in kube.events(ns, NAME))


def test_write_latency_breach_adds_no_replica_and_recommends(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
) -> None:
    # Read pressure with reads calm (p99 0.6x): 1000 reads/s at 100/s per replica asks for 10
    # replicas (4 at most), so only the write-bound refusal keeps the 2 there.
    signals.set(read_qps=1000.0, write_p99=3 * WRITE_OBJECTIVE)
    signals.lag(range(2), 0.1)
    replicas = {
        "statefulSet": REPLICA_SET,
        "minReplicas": 1,
        "maxReplicas": 4,
        "targetReadQPSPerReplica": 100,
    }
    kube.create_workload(ns, NAME, workload_spec(prometheus.prometheus.url, replicas=replicas))
    operator()
    cond = wait_for(
        "WriteBottleneck=True",
        lambda: c if (c := kube.condition(ns, NAME, "WriteBottleneck")).get("status") == "True" else None,
        last=lambda: kube.status(ns, NAME).get("conditions"),
    )
    assert cond["reason"] == "WriteLatencyRising"
    types = {r["type"] for r in kube.status(ns, NAME)["recommendations"]}
    assert {"VerticalScalePrimary", "ShardWrites"} <= types, types
    hold_for("2 read replicas under a write bottleneck", lambda: kube.replicas(ns, REPLICA_SET) == 2, 4)
    assert "ScaledUp" not in kube.event_reasons(ns, NAME)
    flips = [e.message for e in kube.events(ns, NAME) if e.reason == "ConditionChanged"]
    assert any("WriteBottleneck" in m for m in flips), flips


def test_status_shows_the_forecast_and_a_trend_without_enough_history(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
) -> None:
    """The history path end to end: the operator asks the real Prometheus for last season's load
    and the weekly ratios (docs/history.md); this Prometheus has minutes of data, so the forecast
    rests on the present load and the trend says it lacks history (docs/decisions.md)."""
    signals.set(read_qps=1000.0)
    signals.lag(range(2), 0.1)
    spec = workload_spec(
        prometheus.prometheus.url,
        replicas={
            "statefulSet": REPLICA_SET,
            "minReplicas": 1,
            "maxReplicas": 4,
            "targetReadQPSPerReplica": 800.0,
        },
    )
    kube.create_workload(ns, NAME, spec)
    operator()
    status = wait_for(
        "status.forecast and status.readWriteTrend",
        lambda: s if (s := kube.status(ns, NAME)).get("forecast") and s.get("readWriteTrend") else None,
        last=lambda: kube.status(ns, NAME),
    )
    forecast = status["forecast"]
    assert forecast["basis"] in ("present", "trend"), forecast
    assert forecast["horizon"] == "2m"  # forecastSeconds' default, 120 s
    assert "keepReadQPS" not in forecast, "no season is recorded yet: nothing to keep, and not 0"
    trend = status["readWriteTrend"]
    assert trend["verdict"] == "Unknown"
    assert "not enough history" in trend["message"]
    assert trend["points"] == 0
