"""Recommend mode and the paused annotation change nothing; unusable specs are Ready=False with a
specific reason (never a crash loop); deleting a workload cleans up and never waits on a finalizer."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from cluster_helpers import (
    READ_OBJECTIVE,
    REPLICA_SET,
    Kube,
    Metrics,
    OperatorProcess,
    Signals,
    hold_for,
    wait_for,
    workload_spec,
)

NAME = "orders"
PAUSED = "rwscaler.io/paused"


def _nothing_created(kube: Kube, ns: str) -> bool:
    return kube.replicas(ns, REPLICA_SET) == 2 and kube.service(ns) is None and kube.slice_pods(ns) is None


@pytest.mark.parametrize("how", ["recommend", "paused"])
def test_recommend_mode_and_the_paused_annotation_change_nothing(
    how: str,
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
) -> None:
    signals.set(read_p99=2 * READ_OBJECTIVE)
    signals.lag(range(3), 0.1)
    mode = "Recommend" if how == "recommend" else "Enforce"
    annotations = {PAUSED: "true"} if how == "paused" else {}
    # maxReplicas 3: once acting, the breach takes exactly one step (2 -> 3) and stops there.
    replicas = {"statefulSet": REPLICA_SET, "minReplicas": 1, "maxReplicas": 3}
    spec = workload_spec(prometheus.prometheus.url, mode=mode, replicas=replicas)
    kube.create_workload(ns, NAME, spec, annotations)
    operator()
    status = wait_for(
        "a decision to add a replica",
        lambda: s if (s := kube.status(ns, NAME)).get("replicas", {}).get("desired", 0) > 2 else None,
        last=lambda: kube.status(ns, NAME).get("replicas"),
    )
    assert status["mode"] == ("Recommend" if how == "recommend" else "Paused")
    assert any(r["type"] == "AddReadReplicas" for r in status["recommendations"])
    ready = kube.wait_condition(ns, NAME, "Ready", reason="RecommendOnly" if how == "recommend" else "Paused")
    if how == "paused":
        assert PAUSED in ready["message"]
    hold_for("nothing scaled, no Service, no EndpointSlice", lambda: _nothing_created(kube, ns), 4)
    assert not {"ScaledUp", "ScaledDown"} & set(kube.event_reasons(ns, NAME))

    # Lifting the pause (or switching to Enforce) is what lets the same decision act.
    if how == "paused":
        kube.patch_workload(ns, NAME, {"metadata": {"annotations": {PAUSED: None}}})
    else:
        kube.patch_workload(ns, NAME, {"spec": {"mode": "Enforce"}})
    wait_for(
        "the scale-up once acting",
        lambda: kube.replicas(ns, REPLICA_SET) == 3,
        last=lambda: kube.replicas(ns, REPLICA_SET),
    )
    wait_for("status.mode Enforce", lambda: kube.status(ns, NAME).get("mode") == "Enforce")


def test_unusable_specs_are_ready_false_with_a_specific_reason(
    kube: Kube,
    ns: str,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[..., OperatorProcess],
) -> None:
    signals.set()
    signals.lag(range(2), 0.1)
    url = prometheus.prometheus.url

    def reason_becomes(reason: str) -> dict[str, str]:
        return wait_for(
            f"Ready=False ({reason})",
            lambda: c if (c := kube.condition(ns, NAME, "Ready")).get("reason") == reason else None,
            last=lambda: kube.condition(ns, NAME, "Ready"),
        )

    # A Prometheus URL without a usable port is refused at admission (test_cluster_admission.py)
    # and by `rwscaler run --prometheus-url` itself: it never reaches a tick.
    op = operator()
    kube.create_workload(ns, NAME, workload_spec(url))
    cond = reason_becomes("PrimaryStatefulSetNotFound")
    assert f"{ns}/db does not exist" in cond["message"]

    kube.create_statefulset(ns, "db", 1)
    cond = reason_becomes("ScaleTargetNotFound")
    assert f"StatefulSet {REPLICA_SET} (apps/v1) does not exist in {ns}" in cond["message"]
    kube.create_statefulset(ns, REPLICA_SET, 2)
    kube.wait_pods(ns, REPLICA_SET, 2)

    kube.patch_workload(
        ns, NAME, {"spec": {"prometheus": {"bearerTokenSecret": {"name": "prom", "key": "token"}}}}
    )
    cond = reason_becomes("SecretNotFound")
    assert "prom does not exist" in cond["message"]
    kube.core.create_namespaced_secret(
        ns, {"metadata": {"name": "prom"}, "data": {"other": base64.b64encode(b"x").decode()}}
    )
    reason_becomes("SecretKeyNotFound")
    kube.core.patch_namespaced_secret("prom", ns, {"data": {"token": base64.b64encode(b"t0ken").decode()}})
    wait_for(
        "Ready=True once everything exists",
        lambda: kube.condition(ns, NAME, "Ready").get("status") == "True",
        last=lambda: kube.condition(ns, NAME, "Ready"),
    )
    assert op.process.running(), "an unusable spec must never crash the operator"
    assert "Traceback" not in op.log_tail(400)
    flips = [e.message for e in kube.events(ns, NAME) if e.reason == "ConditionChanged"]
    assert any("PrimaryStatefulSetNotFound" in m for m in flips), flips


def test_deleting_a_workload_cleans_up_without_a_finalizer(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
) -> None:
    signals.set()
    signals.lag(range(2), 0.1)
    spec = workload_spec(prometheus.prometheus.url)
    kube.create_workload(ns, NAME, spec)
    op = operator()
    wait_for("the EndpointSlice", lambda: kube.slice_pods(ns))
    assert not (kube.workload(ns, NAME) or {})["metadata"].get("finalizers")
    kube.custom.delete_namespaced_custom_object("rwscaler.io", "v1alpha1", ns, "readwriteworkloads", NAME)
    wait_for("the workload gone", lambda: kube.workload(ns, NAME) is None, timeout=10)
    wait_for("the read Service garbage-collected", lambda: kube.service(ns) is None, timeout=30)
    wait_for("the EndpointSlice garbage-collected", lambda: kube.slice_pods(ns) is None, timeout=30)
    assert kube.replicas(ns, REPLICA_SET) == 2, "the database's own StatefulSets are never touched"

    # With the operator stopped, deletion does not wait for it either.
    kube.create_workload(ns, "again", spec)
    wait_for("the second workload reconciled", lambda: "memory" in kube.status(ns, "again"))
    op.stop()
    kube.custom.delete_namespaced_custom_object("rwscaler.io", "v1alpha1", ns, "readwriteworkloads", "again")
    wait_for(
        "the workload gone with no operator running", lambda: kube.workload(ns, "again") is None, timeout=10
    )
