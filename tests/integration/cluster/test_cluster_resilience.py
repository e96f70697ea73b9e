"""What the operator does when things go wrong: Prometheus stops, the operator is killed mid-way."""

from __future__ import annotations

import time
from collections.abc import Callable

from cluster_helpers import (
    READ_OBJECTIVE,
    REPLICA_SET,
    Kube,
    Metrics,
    OperatorProcess,
    Signals,
    hold_for,
    replica_pod,
    wait_for,
    workload_spec,
)
from tests.support.prometheus import PrometheusServer

NAME = "orders"


def test_prometheus_stopped_holds_reports_and_never_scales_down(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
) -> None:
    # A Prometheus of this test's own, so stopping it disturbs no other test.
    with PrometheusServer([prometheus.exporter.target("rww")], scrape_interval=0.5) as own:
        own.wait_for_targets()
        signals.set()  # healthy, read p99 at 0.6x: neither a step up nor headroom to remove one
        signals.lag(range(2), 0.1)
        # No scale-down window: were missing data read as 0 (p99 0 = all headroom), it would
        # scale down on the very next tick.
        spec = workload_spec(own.url, behavior={"scaleDown": {"stabilizationWindowSeconds": 0, "maxStep": 1}})
        kube.create_workload(ns, NAME, spec)
        operator()
        wait_for(
            "MetricsAvailable=True",
            lambda: kube.condition(ns, NAME, "MetricsAvailable").get("status") == "True",
            last=lambda: kube.status(ns, NAME).get("conditions"),
        )
        own.stop()
        cond = wait_for(
            "MetricsAvailable=False",
            lambda: (
                c if (c := kube.condition(ns, NAME, "MetricsAvailable")).get("status") == "False" else None
            ),
            last=lambda: kube.status(ns, NAME).get("conditions"),
        )
        assert cond["reason"] in {"PrometheusUnreachable", "QueryTimeout"}, cond
        ready = kube.condition(ns, NAME, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "MetricsUnavailable"), ready
        status = kube.status(ns, NAME)
        assert status["observed"]["readLatencyP99"] == "unknown"
        assert "readLatencyP99" in status["observed"]["unknown"]
        hold_for("2 replicas while the metrics are unknown", lambda: kube.replicas(ns, REPLICA_SET) == 2, 5)
        # The read pool is held as last decided, not emptied for unknown lag.
        assert kube.slice_pods(ns) == [replica_pod(0), replica_pod(1)]
        assert "ScaledDown" not in kube.event_reasons(ns, NAME)

        own.start()
        wait_for(
            "MetricsAvailable=True again",
            lambda: kube.condition(ns, NAME, "MetricsAvailable").get("status") == "True",
            timeout=30,
            last=lambda: kube.status(ns, NAME).get("conditions"),
        )


def test_a_restarted_operator_keeps_its_memory_and_never_steps_twice(
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
    )  # scale-down window 3600 s: a scale-down needs the memory of a whole hour of recommendations
    kube.create_workload(ns, NAME, spec)
    first = operator()
    wait_for("a first decision", lambda: "memory" in kube.status(ns, NAME))

    signals.set(read_p99=2 * READ_OBJECTIVE)
    wait_for(
        "the scale-up to 3",
        lambda: kube.replicas(ns, REPLICA_SET) == 3,
        last=lambda: kube.replicas(ns, REPLICA_SET),
    )
    # Far under the objective from now on: without memory, a fresh operator would take one away.
    signals.set(read_p99=0.1 * READ_OBJECTIVE)
    memory = wait_for(
        "the scale recorded in status.memory",
        lambda: m if (m := kube.status(ns, NAME).get("memory", {})).get("last_scale_time") else None,
    )
    first.kill()
    killed_at = time.time()

    operator()
    wait_for(
        "the restarted operator's first decision",
        lambda: kube.status(ns, NAME).get("memory", {}).get("last_tick", 0) > killed_at,
        timeout=30,
    )
    hold_for("3 replicas after the restart", lambda: kube.replicas(ns, REPLICA_SET) == 3, 6)
    after = kube.status(ns, NAME)["memory"]
    assert after["last_scale_time"] == memory["last_scale_time"], "the last scale is remembered"
    assert after["last_scale_direction"] == 1
    assert min(t for t, _ in after["recommendations"]) < killed_at, "the recommendation history survived"
    assert set(after["pool"]) == {replica_pod(i) for i in range(3)}
    reasons = kube.event_reasons(ns, NAME)
    assert reasons.count("ScaledUp") == 1, reasons
    assert "ScaledDown" not in reasons
    limited = kube.condition(ns, NAME, "ScalingLimited")
    rules = {r["rule"] for r in kube.status(ns, NAME)["decision"]["reasons"]}
    assert "Stabilized" in rules or limited.get("reason") == "ReversalGuard", (rules, limited)
