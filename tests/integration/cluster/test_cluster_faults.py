"""Faults under a running operator: the API server or etcd restarts; the scale target is deleted.

`hack/cluster/restart.sh` stops the component (SIGTERM), keeps it down until the test has seen
the operator meet the outage (a replica starts lagging meanwhile, so a tick has a status to
write) and starts it again with the same arguments, then waits until it answers. The operator
must come back by itself, miss no work (what the outage held back, a workload created and a lag
changed after it are acted on), and say so in one log line when the outage starts and one when
it ends (docs/operator.md), never a traceback per failed tick.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cluster_helpers import (
    GROUP,
    PLURAL,
    PRIMARY_POD,
    READ_SERVICE,
    REPLICA_SET,
    REPO,
    VERSION,
    Kube,
    Metrics,
    OperatorProcess,
    Signals,
    replica_pod,
    serving_from_both_replicas,
    wait_for,
    workload_spec,
)

RESTART = REPO / "hack" / "cluster" / "restart.sh"


def _controllers_back(kube: Kube) -> None:
    """The controller-manager's informers re-list with a backoff after the API server is back:
    wait until a new namespace gets its default ServiceAccount, so the tests after this one meet
    a working plane."""
    probe = f"rwt-probe-{uuid.uuid4().hex[:6]}"
    kube.create_namespace(probe)
    try:
        wait_for(
            "the controllers to work again (a default ServiceAccount)",
            lambda: any(
                sa.metadata.name == "default" for sa in kube.core.list_namespaced_service_account(probe).items
            ),
            timeout=180,
        )
    finally:
        kube.core.delete_namespace(probe)


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_a_control_plane_restart_is_one_outage_and_no_missed_work(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
    component: str,
    tmp_path: Path,
) -> None:
    signals.set()
    signals.lag(range(2), 0.1)
    url = prometheus.prometheus.url
    for name in ("orders", "users"):
        kube.create_workload(ns, name, workload_spec(url, pooler={"kind": "None"}))
    op = operator()
    for name in ("orders", "users"):
        kube.wait_condition(ns, name, "Ready", "True")
    wait_for(
        "both replicas in the read pool",
        lambda: kube.status(ns, "orders").get("readEndpoints") == [replica_pod(0), replica_pod(1)],
        last=lambda: kube.status(ns, "orders").get("readEndpoints"),
    )

    # The ticks read from kopf's watches (kube/watch_cache.py), so an outage shows in a tick only
    # when it has something to write: a replica starts lagging while the component is down.
    release = tmp_path / "release"
    restart = subprocess.Popen(
        [str(RESTART), component, f"until:{release}"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert restart.stdout is not None
        for line in restart.stdout:
            if "stopped" in line:
                break
        signals.lag([1], 30.0)
        wait_for(
            "the operator to say the Kubernetes API is unavailable",
            lambda: "Kubernetes API unavailable" in op.log_text(),
            timeout=90,
            last=op.log_tail,
        )
    finally:
        release.touch()
        assert restart.wait(timeout=180) == 0
    wait_for(
        "the operator to say the outage is over",
        lambda: "outage over after" in op.log_text(),
        timeout=90,
        last=op.log_tail,
    )
    # No missed work: what the outage held back is done (the lagging replica leaves the read
    # pool), a workload created after it is picked up (kopf's watch resumed), and a replica that
    # catches up comes back.
    wait_for(
        "the lagging replica out of the read pool",
        lambda: kube.status(ns, "orders").get("readEndpoints") == [replica_pod(0)],
        last=lambda: kube.status(ns, "orders").get("readEndpoints"),
    )
    kube.create_workload(ns, "after", workload_spec(url, pooler={"kind": "None"}))
    kube.wait_condition(ns, "after", "Ready", "True")
    signals.lag([1], 0.1)
    wait_for(
        "the replica back in the read pool",
        lambda: kube.status(ns, "users").get("readEndpoints") == [replica_pod(0), replica_pod(1)],
        last=lambda: kube.status(ns, "users").get("readEndpoints"),
    )

    _controllers_back(kube)
    log = op.log_text()
    lines = log.splitlines()
    started = [line for line in lines if "Kubernetes API unavailable" in line]
    ended = [line for line in lines if "outage over after" in line]
    print(f"\n{component} down: {len(started)} outage line(s), {len(ended)} end line(s)")
    assert len(started) == 1 and len(ended) == 1, "\n".join(started + ended)
    assert "Traceback" not in log, op.log_tail(80)
    loud = [line for line in lines if "WARNING" in line or "ERROR" in line]
    print("\n".join(loud))
    # kopf's own watch retries: at most the first attempt of each watch stream (workloads, pods,
    # StatefulSets, Services, EndpointSlices: handlers.py).
    assert len([line for line in loud if "Request attempt" in line]) <= 5, "\n".join(loud)
    assert not [line for line in loud if "ERROR" in line], "\n".join(loud)


def test_a_deleted_scale_target_leaves_the_read_pool_and_reads_go_to_the_primary(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
) -> None:
    """Was: the EndpointSlice kept the deleted pods until the StatefulSet came back (issue 13)."""
    serving_from_both_replicas(kube, ns, signals, prometheus.prometheus.url, operator)
    both = [replica_pod(0), replica_pod(1)]

    kube.apps.delete_namespaced_stateful_set(REPLICA_SET, ns)
    wait_for(
        "reads on the primary",
        lambda: kube.slice_pods(ns) == [PRIMARY_POD],
        last=lambda: kube.slice_pods(ns),
    )
    kube.wait_condition(ns, "orders", "Ready", "False", "ScaleTargetNotFound")
    assert kube.status(ns, "orders")["readEndpoints"] == [PRIMARY_POD]
    assert kube.replicas(ns, "db") == 1

    kube.create_statefulset(ns, REPLICA_SET, 2)
    kube.wait_pods(ns, REPLICA_SET, 2)
    wait_for(
        "the replicas back in the read pool",
        lambda: kube.slice_pods(ns) == both,
        last=lambda: kube.slice_pods(ns),
    )
    kube.wait_condition(ns, "orders", "Ready", "True")


def test_kill_9_during_a_drain_resumes_the_drain_it_does_not_restart_it(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
) -> None:
    """The drain (which replicas, since when) is written the tick it starts (Memory.checkpoint_key):
    a restarted operator continues it with the same start, so its timeout is not counted twice."""
    signals.set(read_qps=1000.0)  # 1000 reads/s at 1000/s per replica: one replica is enough
    signals.lag(range(2), 0.1)
    spec = workload_spec(
        prometheus.prometheus.url,
        replicas={
            "statefulSet": REPLICA_SET,
            "minReplicas": 1,
            "maxReplicas": 3,
            "targetReadQPSPerReplica": 1000,
        },
        pooler={"kind": "EndpointSlice", "readService": READ_SERVICE, "drainTimeoutSeconds": 60},
        behavior={
            "scaleDown": {"stabilizationWindowSeconds": 0, "maxStep": 1},
            "trend": {"seasonsSeconds": []},
        },
    )
    kube.create_workload(ns, "orders", spec)
    first = operator()
    drain = wait_for(
        "a drain of replica 1",
        lambda: kube.status(ns, "orders").get("memory", {}).get("drain"),
        timeout=60,
        last=lambda: kube.status(ns, "orders").get("decision"),
    )
    assert drain["replicas"] == [replica_pod(1)] and kube.slice_pods(ns) == [replica_pod(0)]

    first.kill()
    killed_at = time.time()
    operator()
    after = wait_for(
        "the restarted operator's first decision",
        lambda: (
            m if (m := kube.status(ns, "orders").get("memory", {})).get("last_tick", 0) > killed_at else None
        ),
        timeout=30,
    )
    assert after.get("drain") == drain, "the drain resumes with its start, it does not restart"
    assert kube.replicas(ns, REPLICA_SET) == 2, "still draining: not scaled in yet"
    assert kube.slice_pods(ns) == [replica_pod(0)], "the draining replica stays out of the pool"


def test_a_second_status_writer_meets_conflicts_and_nothing_is_lost(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[..., OperatorProcess],
) -> None:
    """Another tool writes its own key under status ten times a second: the operator's patches that
    meet a changed resourceVersion (409) write nothing and are decided again; its decisions still
    land, and the other tool's key is kept."""
    op = serving_from_both_replicas(
        kube, ns, signals, prometheus.prometheus.url, lambda: operator("--log-level", "debug")
    )
    stop = threading.Event()
    writes = 0

    def other_tool() -> None:
        nonlocal writes
        while not stop.is_set():
            writes += 1
            kube.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, ns, PLURAL, "orders", {"status": {"otherTool": {"writes": writes}}}
            )
            stop.wait(0.1)

    writer = threading.Thread(target=other_tool, daemon=True)
    writer.start()
    try:
        signals.lag([1], 30.0)
        kube.wait_condition(ns, "orders", "ReplicationLagHigh", "True", "ReplicasLagging")
        signals.lag([1], 0.1)
        kube.wait_condition(ns, "orders", "ReplicationLagHigh", "False")
    finally:
        stop.set()
        writer.join(10)
    status = kube.status(ns, "orders")
    assert status["otherTool"]["writes"] >= 1 and "memory" in status
    conflicts = op.log_text().count("not written")
    print(f"\n{writes} writes by the other tool; the operator met {conflicts} conflict(s) and lost nothing")
