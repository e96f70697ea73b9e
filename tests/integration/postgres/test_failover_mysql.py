"""Failover with real MariaDB while the operator runs (issue 11, item 4; the `mysql` preset).

Percona's MySQL layout: one StatefulSet ``orders-db`` (3 pods on the local control plane's kwok
nodes) holds every member, and the primary pod carries ``mysql.percona.com/primary=true``
(Percona Server for MySQL operator: its orchestrator hook sets the label on the new primary and
deletes it from the others; this test moves it the same way). The role metric
``mysql_global_variables_read_only`` (1 replica, 0 primary) confirms the label. Behind each pod
is the real MariaDB server of the same name (tests/support/mariadb.py, ``replicas=2`` with the
one-StatefulSet naming: ``orders-db-0`` the primary, ``orders-db-1`` and ``orders-db-2`` GTID
replicas with read_only=1), Debian's mysqld_exporter 0.14 on each (``--collect.global_variables``)
and a real Prometheus scraping them every second, labelled with this test's namespace. The
operator runs as ``rwscaler run -n <namespace>`` with the ServiceAccount's RBAC, on a
ReadWriteWorkload with ``replicas.statefulSet: orders-db`` (its count includes the primary),
``primary.roleLabels: PerconaMySQL``, the ``mysql`` preset and an EndpointSlice pooler. A
``mariadb`` client writes on the primary and another reads on a replica at fixed rates.

The failover (``MariaDbEnv.failover``): the primary turns read-only, ``orders-db-2`` (the highest
ordinal) is promoted (``STOP SLAVE; RESET SLAVE ALL; read_only=0``), ``orders-db-1`` and the old
primary ``orders-db-0`` replicate from it (read_only=1). Checked:

- between the promotion and the label's move, label and metric disagree: ScalingLimited reason
  RoleUnknown (the operator holds rather than guess);
- within two intervals of the label's move (plus two scrapes): status.primary.pod names
  ``orders-db-2`` and status.observed.writeQPS is known and non-zero while the writer runs on
  it; ``orders-db-2`` leaves the read pool (status.readEndpoints and the EndpointSlice); the old
  primary ``orders-db-0``, a caught-up replica at once, is in the pool;
- a scale-in to one read replica (the StatefulSet 3 -> 2 would remove ordinal 2, the primary) is
  refused: ScalingLimited reason PrimaryWouldBeRemoved, the StatefulSet stays at 3; throughout
  the test it never goes below 3.

The module's MariaDbEnv is reset (failed back, namespace label restored) after the test. Needs
the local control plane (`make cluster`) and MariaDB (`make pgenv-deps-mysql`); both fail
instead of skipping under RWSCALER_REQUIRE_ALL_TIERS=1. Run by pytest with this
folder's tests (markers `postgres` and `cluster`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from failover_helpers import (
    INTERVAL_S,
    NAME,
    READ_SERVICE,
    Kube,
    OperatorProcess,
    Plane,
    SizeWatch,
    assert_scale_in_refused,
    limited_by,
    primary_pod,
    read_pool,
    slice_pods,
    summary,
    timed,
    wait_for,
    write_qps,
)
from tests.support.mariadb import LoadRun, MariaDbEnv, mariadb_available
from tests.support.tiers import need

pytestmark = [pytest.mark.timeout(300), pytest.mark.cluster]

STATEFULSET = "orders-db"
PRIMARY_LABEL = "mysql.percona.com/primary"


@pytest.fixture(scope="module")
def mariadb_bed() -> Iterator[MariaDbEnv]:
    need(*mariadb_available())
    with MariaDbEnv(replicas=2, replica_statefulset=STATEFULSET) as env:
        yield env


@pytest.fixture
def db(mariadb_bed: MariaDbEnv, ns: str) -> Iterator[MariaDbEnv]:
    """The bed in its original layout, its series labelled with the test's namespace."""
    mariadb_bed.reset()
    mariadb_bed.set_namespace(ns)
    yield mariadb_bed
    mariadb_bed.reset()


# ---- what the test does to the pods ------------------------------------------------------
def label_primary(kube: Kube, ns: str, pod: str, primary: bool) -> None:
    """Set or delete the Percona primary label on a pod (a merge patch; None deletes)."""
    kube.core.patch_namespaced_pod(
        pod, ns, {"metadata": {"labels": {PRIMARY_LABEL: "true" if primary else None}}}
    )


def spec(prometheus_url: str) -> dict[str, Any]:
    return {
        "primary": {"roleLabels": "PerconaMySQL"},
        # The StatefulSet's count includes the primary: 2 read replicas are 3 pods.
        "replicas": {"statefulSet": STATEFULSET, "minReplicas": 2, "maxReplicas": 2},
        "prometheus": {"url": prometheus_url, "timeout": "2s"},
        "metrics": {"preset": "mysql", "staleness": "30s"},
        "objectives": {"readLatencyP99": "500ms", "writeLatencyP99": "500ms", "maxReplicationLag": "5s"},
        "pooler": {"kind": "EndpointSlice", "readService": READ_SERVICE},
        "behavior": {
            "intervalSeconds": INTERVAL_S,
            "tolerance": 0.1,
            "scaleUp": {"stabilizationWindowSeconds": 0, "maxStep": 1},
            "scaleDown": {"stabilizationWindowSeconds": 0, "maxStep": 1},
            "readPool": {"reentrySeconds": 1, "reentryLagRatio": 0.5},
        },
        "mode": "Enforce",
    }


# ---- the test ------------------------------------------------------------------------------------
def test_failover_mysql_write_qps_read_pool_and_scale_in_follow_the_new_primary(
    plane: Plane, ns: str, db: MariaDbEnv, operator: Callable[[], OperatorProcess]
) -> None:
    kube = plane.kube
    kube.create_statefulset(ns, STATEFULSET, 3, image="percona/percona-server:8.0")
    pods = kube.wait_pods(ns, STATEFULSET, 3)
    assert pods == db.pod_names == ["orders-db-0", "orders-db-1", "orders-db-2"]
    label_primary(kube, ns, "orders-db-0", True)

    loads: list[LoadRun] = [db.start_load(read_rate=30, write_rate=20, duration=280)]
    watch = SizeWatch(kube, ns, STATEFULSET)
    try:
        kube.create_workload(ns, NAME, spec(db.prometheus_url))
        operator()

        # Before: orders-db-0 writes (by its label, confirmed by read_only=0), the others read.
        wait_for(
            "orders-db-0 the primary with write QPS, orders-db-1 and -2 in the pool",
            lambda: (
                primary_pod(s := kube.status(ns, NAME)) == "orders-db-0"
                and (write_qps(s) or 0) > 0
                and read_pool(s) == ["orders-db-1", "orders-db-2"]
                and slice_pods(kube, ns) == ["orders-db-1", "orders-db-2"]
            ),
            timeout=90,
            last=lambda: summary(kube, ns),
        )

        # The failover in the databases; the label still names orders-db-0: they disagree.
        loads[-1].stop()  # its writer would hit the read-only old primary
        steps = db.failover("orders-db-2")
        print(f"failover steps (cumulative s): {steps}")
        loads.append(db.start_load(read_rate=30, write_rate=20, duration=250))  # writes on orders-db-2
        promoted = time.monotonic()
        timed(
            "ScalingLimited RoleUnknown while label and read_only disagree",
            limited_by(kube, ns, "RoleUnknown"),
            kube,
            ns,
            promoted,
        )

        # The label moves, as Percona's operator moves it.
        label_primary(kube, ns, "orders-db-0", False)
        label_primary(kube, ns, "orders-db-2", True)
        moved = time.monotonic()
        timed(
            "status.primary.pod orders-db-2 with write QPS known and non-zero",
            lambda: primary_pod(s := kube.status(ns, NAME)) == "orders-db-2" and (write_qps(s) or 0) > 0,
            kube,
            ns,
            moved,
        )
        timed(
            "orders-db-2 out of the read pool, orders-db-0 in it as a replica",
            lambda: (
                read_pool(kube.status(ns, NAME)) == ["orders-db-0", "orders-db-1"]
                and slice_pods(kube, ns) == ["orders-db-0", "orders-db-1"]
            ),
            kube,
            ns,
            moved,
        )

        # One read replica: the StatefulSet 3 -> 2 would remove ordinal 2, the primary: refused.
        assert_scale_in_refused(kube, ns, STATEFULSET, 3)
    finally:
        watch.stop()
        for load in loads:
            load.stop()
    assert watch.lowest == 3, f"the StatefulSet went down to {watch.lowest}: a scale action removed a pod"
    assert kube.running_pods(ns, STATEFULSET) == ["orders-db-0", "orders-db-1", "orders-db-2"]
