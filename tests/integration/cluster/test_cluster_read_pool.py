"""Replication lag on the real plane: a lagging replica leaves the EndpointSlice and comes back;
when every replica lags, the primary serves reads and ReplicationLagHigh says so."""

from __future__ import annotations

from collections.abc import Callable

from cluster_helpers import (
    PRIMARY_POD,
    SLICE_NAME,
    Kube,
    Metrics,
    OperatorProcess,
    Signals,
    replica_pod,
    wait_for,
    workload_spec,
)

NAME = "orders"


def test_lagging_replicas_leave_the_pool_come_back_and_the_primary_serves_when_all_lag(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
) -> None:
    signals.set()
    signals.lag(range(2), 0.1)
    kube.create_workload(ns, NAME, workload_spec(prometheus.prometheus.url))
    operator()
    both = [replica_pod(0), replica_pod(1)]
    slice_now = lambda: kube.slice_pods(ns)  # noqa: E731
    wait_for("both replicas in the pool", lambda: slice_now() == both, last=slice_now)

    signals.lag([1], 30.0)
    wait_for(
        "the lagging replica out of the EndpointSlice",
        lambda: slice_now() == [replica_pod(0)],
        last=slice_now,
    )
    kube.wait_condition(ns, NAME, "ReplicationLagHigh", "True", "ReplicasLagging")
    assert kube.status(ns, NAME)["maxReplicationLag"] == "30s"
    assert kube.replicas(ns, "db-replica") == 2, "lag alone is no reason to scale"

    signals.lag([1], 0.1)
    wait_for(
        "the recovered replica back in the pool", lambda: slice_now() == both, last=slice_now, timeout=20
    )
    kube.wait_condition(ns, NAME, "ReplicationLagHigh", "False")

    signals.lag([0, 1], 30.0)
    wait_for("the primary serving reads", lambda: slice_now() == [PRIMARY_POD], last=slice_now)
    kube.wait_condition(ns, NAME, "ReplicationLagHigh", "True", "ReadsOnPrimary")
    status = kube.status(ns, NAME)
    assert status["readEndpoints"] == [PRIMARY_POD]
    es = kube.discovery.read_namespaced_endpoint_slice(SLICE_NAME, ns)
    assert [a for e in es.endpoints for a in e.addresses] == [kube.pod_ips(ns)[PRIMARY_POD]]

    # Events follow the status they describe by a moment.
    pool_events = lambda: [e.message for e in kube.events(ns, NAME) if e.reason == "ReadPoolChanged"]  # noqa: E731
    wait_for(
        "ReadPoolChanged events for each change",
        lambda: (
            (m := pool_events())
            and any(f"left: {replica_pod(1)}" in x for x in m)
            and any(f"joined: {replica_pod(1)}" in x for x in m)
            and any(x.startswith(f"read pool: {PRIMARY_POD}") for x in m)
        ),
        last=pool_events,
    )
