"""A replica pod that turns unready or is deleted leaves the read pool as the watch reports it, not at
the next tick, measured side by side with Kubernetes' own EndpointSlice controller taking it out of
an ordinary Service over the same pods (docs/operator.md, RBAC `pods: list, watch`).

The workload ticks every 30 s, so a removal within a few seconds is the watch's doing. kwok plays
the kubelet: it marks a Pending pod Ready, and leaves a Running pod's Ready condition as a patch
sets it, so a test can turn a pod unready through the status subresource.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from cluster_helpers import (
    REPLICA_SET,
    SLICE_NAME,
    Kube,
    Metrics,
    OperatorProcess,
    Signals,
    replica_pod,
    serving_from_both_replicas,
    wait_for,
)

INTERVAL_S = 30
PLAIN = "db-replica-plain"  # an ordinary Service: Kubernetes' EndpointSlice controller owns its slices


# A deleted pod comes back under the same name (its StatefulSet recreates it): endpoints are told
# apart by the pod's uid.
def _ours(kube: Kube, ns: str) -> set[str]:
    es = kube.discovery.read_namespaced_endpoint_slice(SLICE_NAME, ns)
    return {e.target_ref.uid for e in es.endpoints or [] if e.target_ref is not None}


def _plain_ready(kube: Kube, ns: str) -> set[str]:
    slices = kube.discovery.list_namespaced_endpoint_slice(
        ns, label_selector=f"kubernetes.io/service-name={PLAIN}"
    ).items
    return {
        e.target_ref.uid
        for s in slices
        for e in s.endpoints or []
        if e.target_ref is not None and e.conditions is not None and e.conditions.ready
    }


def _race(kube: Kube, ns: str, pod: str, change: Callable[[], None]) -> tuple[float, float]:
    """Seconds until the pod leaves rwscaler's read slice, and Kubernetes' ready endpoints."""
    uid = kube.core.read_namespaced_pod(pod, ns).metadata.uid
    t0 = time.monotonic()
    change()
    ours = theirs = None
    while ours is None or theirs is None:
        now = time.monotonic() - t0
        assert now < INTERVAL_S - 5, f"not out within {now:.1f}s: ours {ours}, Kubernetes' {theirs}"
        if ours is None and uid not in _ours(kube, ns):
            ours = now
        if theirs is None and uid not in _plain_ready(kube, ns):
            theirs = now
        time.sleep(0.05)
    return ours, theirs


# A deleted StatefulSet pod is recreated at once under its name, and kwok gives it the same IP
# and Ready within a moment: the read Service's endpoint stays right (same name and address) and
# rwscaler does not rewrite it, while Kubernetes' controller updates its targetRef uid; timing
# that race measures nothing. Pods that go for good: test_cluster_faults.py (deleted target).
@pytest.mark.parametrize("how", ["unready"])
def test_a_pod_leaves_the_read_pool_as_fast_as_the_endpointslice_controller_takes_it_out(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
    how: str,
) -> None:
    kube.core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": PLAIN},
            "spec": {"selector": {"app": REPLICA_SET}, "ports": [{"name": "postgres", "port": 5432}]},
        },
    )
    serving_from_both_replicas(
        kube, ns, signals, prometheus.prometheus.url, operator, behavior={"intervalSeconds": INTERVAL_S}
    )
    both = [replica_pod(0), replica_pod(1)]
    uids = {kube.core.read_namespaced_pod(p, ns).metadata.uid for p in both}
    wait_for("both replicas ready in the plain Service", lambda: _plain_ready(kube, ns) == uids)
    pod = replica_pod(1)

    def unready() -> None:
        kube.core.patch_namespaced_pod_status(
            pod, ns, {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
        )

    def deleted() -> None:
        kube.core.delete_namespaced_pod(pod, ns, grace_period_seconds=0)

    ours, theirs = _race(kube, ns, pod, unready if how == "unready" else deleted)
    print(f"\n{how}: rwscaler's read pool {ours:.2f}s, Kubernetes' EndpointSlice controller {theirs:.2f}s")
    # Watch-driven: far inside the 30 s interval, and within a few seconds of the controller.
    assert ours < 10 and ours <= theirs + 3, (ours, theirs)
