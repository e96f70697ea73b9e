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
        kube.wait_condition(ns, NAME, "Ready", "False", "MetricsUnavailable")
        status = kube.status(ns, NAME)
        assert status["observed"]["readLatencyP99"] == "unknown"
        assert "readLatencyP99" in status["observed"]["unknown"]
        hold_for("2 replicas while the metrics are unknown", lambda: kube.replicas(ns, REPLICA_SET) == 2, 5)
        # The read pool is held as last decided, not emptied for unknown lag.
        assert kube.slice_pods(ns) == [replica_pod(0), replica_pod(1)]
        assert "ScaledDown" not in kube.event_reasons(ns, NAME)
        # Holding, the decision does not change from tick to tick: no status patch at all.
        version = (kube.workload(ns, NAME) or {})["metadata"]["resourceVersion"]
        hold_for(
            "no write while nothing changes",
            lambda: (kube.workload(ns, NAME) or {})["metadata"]["resourceVersion"] == version,
            3,
        )

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
    reentry = 15
    signals.set()
    signals.lag(range(3), 0.1)
    spec = workload_spec(
        prometheus.prometheus.url,
        replicas={"statefulSet": REPLICA_SET, "minReplicas": 1, "maxReplicas": 3},
        behavior={"readPool": {"reentrySeconds": reentry, "reentryLagRatio": 0.5}},
    )
    kube.create_workload(ns, NAME, spec)
    first = operator()
    wait_for("a first decision", lambda: "memory" in kube.status(ns, NAME))

    # A scale-up step, then no more reason to scale.
    signals.set(read_p99=2 * READ_OBJECTIVE)
    wait_for(
        "the scale-up to 3",
        lambda: kube.replicas(ns, REPLICA_SET) == 3,
        last=lambda: kube.replicas(ns, REPLICA_SET),
    )
    signals.set()
    # replica 1 lags, leaves the pool, recovers: it may come back only after `reentry` seconds.
    pool = lambda: kube.slice_pods(ns) or []  # noqa: E731
    signals.lag([1], 30.0)
    wait_for("replica 1 out of the pool", lambda: replica_pod(1) not in pool(), last=pool)
    signals.lag([1], 0.1)
    memory = wait_for(
        "replica 1's recovery in status.memory",
        lambda: (
            m
            if (m := kube.status(ns, NAME).get("memory", {}))
            .get("pool", {})
            .get(replica_pod(1), {})
            .get("healthy_since")
            else None
        ),
    )
    recovering_since = memory["pool"][replica_pod(1)]["healthy_since"]
    assert memory.get("last_scale_time"), memory

    first.kill()  # SIGKILL, mid-way through the re-entry period
    killed_at = time.time()
    restarted = operator()
    wait_for(
        "the restarted operator's first decision",
        lambda: kube.status(ns, NAME).get("memory", {}).get("last_tick", 0) > killed_at,
        timeout=30,
    )
    remaining = recovering_since + reentry - time.time() - 1
    assert remaining > 2, f"the restart took too long to test the re-entry timer ({remaining:.1f}s left)"
    hold_for("replica 1 still out after the restart", lambda: replica_pod(1) not in pool(), remaining)
    wait_for(
        "replica 1 back once its re-entry period passed",
        lambda: replica_pod(1) in pool(),
        timeout=15,
        last=pool,
    )
    assert time.time() >= recovering_since + reentry - 0.5, (
        "the re-entry period was counted from before the restart"
    )

    after = kube.status(ns, NAME)["memory"]
    assert after["last_scale_time"] == memory["last_scale_time"], "the last scale is remembered"
    assert after["last_scale_direction"] == 1
    assert kube.replicas(ns, REPLICA_SET) == 3
    reasons = kube.event_reasons(ns, NAME)
    assert reasons.count("ScaledUp") == 1, reasons
    assert "ScaledDown" not in reasons

    # The control: the same restart with the memory erased takes replica 1 back at once. So it
    # was the memory carried across the restart that kept it out.
    signals.lag([1], 30.0)
    wait_for("replica 1 out of the pool again", lambda: replica_pod(1) not in pool(), last=pool)
    signals.lag([1], 0.1)
    wait_for(
        "replica 1 recovering again",
        lambda: (
            kube.status(ns, NAME)
            .get("memory", {})
            .get("pool", {})
            .get(replica_pod(1), {})
            .get("healthy_since")
        ),
    )
    restarted.stop()
    kube.custom.patch_namespaced_custom_object_status(
        "rwscaler.io", "v1alpha1", ns, "readwriteworkloads", NAME, {"status": {"memory": None}}
    )
    erased_at = time.time()
    operator()
    wait_for("replica 1 back at once without memory", lambda: replica_pod(1) in pool(), timeout=10, last=pool)
    assert time.time() - erased_at < reentry
