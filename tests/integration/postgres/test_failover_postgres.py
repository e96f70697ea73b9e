"""Failover with real PostgreSQL while the operator runs (issue 11, item 4; the `postgres` preset).

The pair layout: StatefulSets ``orders-pg`` (1 pod, the primary at the start) and
``orders-pg-replica`` (2 pods, the scale target) on the local control plane's kwok nodes, with no
role labels: the role metric ``pg_replication_is_replica`` decides. Behind each pod is the real
server of the shared PgEnv with the same name (tests/support/pgenv.py: ``orders-pg-0`` the
primary, ``orders-pg-replica-0/1`` streaming replicas), its postgres_exporter and a real
Prometheus scraping them every second, labelled with this test's namespace
(``PgEnv.set_namespace``). The operator runs as ``rwscaler run -n <namespace>`` with the
ServiceAccount's RBAC (as in tests/integration/cluster/), on a ReadWriteWorkload with the
``postgres`` preset and an EndpointSlice pooler. A pgbench writer updates rows through
PgBouncer's write database; pgbench readers read through its read database.

The failover (``PgEnv.failover``): the primary stops, ``orders-pg-replica-1`` (the scale
target's HIGHEST ordinal) is promoted with ``pg_ctl promote``, ``orders-pg-replica-0`` is
re-pointed to it; the old primary stays down until the test rejoins it as a replica
(``PgEnv.rejoin``: a fresh base backup). Checked, each within two intervals of the event
becoming visible to Prometheus (two scrapes):

- status.primary.pod names ``orders-pg-replica-1``, and status.observed.writeQPS is known and
  non-zero while the writer runs on it (write QPS follows the new primary);
- ``orders-pg-replica-1`` leaves the read pool (status.readEndpoints and the EndpointSlice);
- ``orders-pg-0``, back as a replica, joins the pool once caught up, and once reads reach it
  status.observed.readQPS is known;
- a scale-in of ``orders-pg-replica`` (min and max lowered to 1), which would remove ordinal 1,
  the primary, is refused: ScalingLimited reason PrimaryWouldBeRemoved, the StatefulSet stays
  at 2; and throughout the test the StatefulSet never goes below 2 (no scale action removes
  the primary).

The shared PgEnv is reset (failed back to ``orders-pg-0``, namespace label restored) after the
test. Needs the local control plane (`make cluster`) and the PostgreSQL setup
(`make pgenv-deps`); both fail instead of skipping under RWSCALER_REQUIRE_ALL_TIERS=1. Run by pytest with this
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
    OperatorProcess,
    Plane,
    SizeWatch,
    assert_scale_in_refused,
    primary_pod,
    read_pool,
    slice_pods,
    summary,
    timed,
    wait_for,
    write_qps,
)
from tests.support.pgenv import PgbenchRun, PgEnv

pytestmark = [pytest.mark.timeout(300), pytest.mark.cluster]

PRIMARY_SET, REPLICA_SET = "orders-pg", "orders-pg-replica"


@pytest.fixture
def pg(clean_pgenv: PgEnv, ns: str) -> Iterator[PgEnv]:
    """The shared PgEnv, its series labelled with the test's namespace (reset restores both)."""
    clean_pgenv.set_namespace(ns)
    yield clean_pgenv


def spec(prometheus_url: str) -> dict[str, Any]:
    return {
        # The pair layout; no roleLabels: the pods carry none, the role metric decides.
        "primary": {"statefulSet": PRIMARY_SET},
        "replicas": {"statefulSet": REPLICA_SET, "minReplicas": 2, "maxReplicas": 2},
        "prometheus": {"url": prometheus_url, "timeout": "2s"},
        "metrics": {"preset": "postgres", "staleness": "30s"},
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
def test_failover_postgres_write_qps_read_pool_and_scale_in_follow_the_new_primary(
    plane: Plane, ns: str, pg: PgEnv, operator: Callable[[], OperatorProcess]
) -> None:
    kube = plane.kube
    kube.create_statefulset(ns, PRIMARY_SET, 1)
    kube.create_statefulset(ns, REPLICA_SET, 2)
    kube.wait_pods(ns, PRIMARY_SET, 1)
    kube.wait_pods(ns, REPLICA_SET, 2)
    assert sorted(i.name for i in pg.instances) == [
        "orders-pg-0",
        "orders-pg-replica-0",
        "orders-pg-replica-1",
    ]

    runs: list[PgbenchRun] = []

    def writer() -> PgbenchRun:
        run = pg.start_pgbench(read_only=False, rate=20, duration=280, clients=1)
        runs.append(run)
        return run

    runs.append(pg.start_pgbench(read_only=True, rate=30, duration=280, clients=1))
    first_writer = writer()
    watch = SizeWatch(kube, ns, REPLICA_SET)
    try:
        kube.create_workload(ns, NAME, spec(pg.prometheus_url))
        operator()

        # Before: orders-pg-0 writes, both replicas serve reads.
        wait_for(
            "orders-pg-0 the primary with write QPS, both replicas in the pool",
            lambda: (
                primary_pod(s := kube.status(ns, NAME)) == "orders-pg-0"
                and (write_qps(s) or 0) > 0
                and read_pool(s) == ["orders-pg-replica-0", "orders-pg-replica-1"]
                and slice_pods(kube, ns) == ["orders-pg-replica-0", "orders-pg-replica-1"]
            ),
            timeout=90,
            last=lambda: summary(kube, ns),
        )

        # The failover: the primary stops, orders-pg-replica-1 is promoted, -0 follows it.
        first_writer.stop()  # its server is about to stop; pgbench does not reconnect
        steps = pg.failover("orders-pg-replica-1", rejoin_old=False)
        print(f"failover steps (cumulative s): {steps}")
        writer()  # through PgBouncer's write database, now the new primary
        done = time.monotonic()
        timed(
            "status.primary.pod orders-pg-replica-1 with write QPS known and non-zero",
            lambda: (
                primary_pod(s := kube.status(ns, NAME)) == "orders-pg-replica-1" and (write_qps(s) or 0) > 0
            ),
            kube,
            ns,
            done,
        )
        timed(
            "orders-pg-replica-1 out of the read pool (status and EndpointSlice)",
            lambda: (
                "orders-pg-replica-1" not in read_pool(kube.status(ns, NAME))
                and "orders-pg-replica-1" not in (slice_pods(kube, ns) or [])
            ),
            kube,
            ns,
            done,
        )
        assert read_pool(kube.status(ns, NAME)) == ["orders-pg-replica-0"], summary(kube, ns)

        # The old primary comes back as a replica of the new one: in the pool once caught up.
        pg.rejoin("orders-pg-0")
        back = time.monotonic()
        timed(
            "orders-pg-0 back in the read pool as a replica",
            lambda: (
                read_pool(kube.status(ns, NAME)) == ["orders-pg-0", "orders-pg-replica-0"]
                and slice_pods(kube, ns) == ["orders-pg-0", "orders-pg-replica-0"]
            ),
            kube,
            ns,
            back,
        )
        assert primary_pod(kube.status(ns, NAME)) == "orders-pg-replica-1"
        # Readers follow the pool, as clients of the read Service would: PgBouncer's read
        # database -> both replicas. Until its first read the rejoined server has no read
        # series (pg_stat_statements starts empty) and read QPS is unknown; after it, known.
        pg.write_pgbouncer_databases(pg.initial_databases())
        routed = time.monotonic()
        timed(
            "status.observed.readQPS known with reads on the rejoined replica",
            lambda: (kube.status(ns, NAME).get("observed") or {}).get("readQPS", "unknown") != "unknown",
            kube,
            ns,
            routed,
        )

        # A scale-in of orders-pg-replica would remove ordinal 1, the primary: refused.
        assert_scale_in_refused(kube, ns, REPLICA_SET, 2)
    finally:
        watch.stop()
        for run in runs:
            run.stop()
    assert watch.lowest == 2, f"the scale target went down to {watch.lowest}: a scale action removed a pod"
    assert sorted(kube.running_pods(ns, REPLICA_SET)) == ["orders-pg-replica-0", "orders-pg-replica-1"]
