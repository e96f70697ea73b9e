"""A hung Prometheus, then a restarted one, under an operator running 1,000 workloads (issue 13, item 4).

One operator watches the test namespace, where 1,000 "load" workloads (StatefulSets of 0 pods,
`minReplicas: 0`, the `postgres` preset, no pooler, a 60 s interval) and the workload `orders`
(the usual `db`/`db-replica` pair, 2 replicas) read a Prometheus of their own, which the test
stops with SIGSTOP: it accepts connections and never answers. The workload `billing` reads the
session's healthy Prometheus. docs/operator.md ("What a tick asks the API server": no cap on
ticks; a tick waiting for Prometheus holds no slot) and docs/metrics.md (each query bounded by the
workload's `prometheus.timeout`; unknown signals hold) give what must happen:

- while the Prometheus hangs, `orders` reports `MetricsAvailable=False` (`QueryTimeout`) and does
  not scale down although its scale-down window is 0 (unknown is never zero);
- `billing`, on the healthy Prometheus, still acts within a few of its 1 s intervals: its read load
  rises and it scales up, while 1,001 workloads wait on the hung server;
- after a restart of that Prometheus, `orders` reads its signals again and acts on them.

The load workloads' 60 s interval keeps 1,000 of them within what one operator process ticks on
this 2-core machine (docs/bench-operator.md); what they exercise here is 1,000 ticks waiting on
one hung server at once.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_helpers import (
    GROUP,
    PLURAL,
    REPLICA_SET,
    VERSION,
    Kube,
    Metrics,
    OperatorProcess,
    Signals,
    hold_for,
    kubectl_binary,
    statefulset_body,
    wait_for,
    workload_body,
    workload_spec,
)
from tests.support.figures import record
from tests.support.prometheus import PrometheusServer

LOAD = 1000
BILLING_ACTS_WITHIN_S = 15.0  # a few of billing's 1 s intervals, far below 1,000 timeouts
SCRAPE_S = 0.5


@pytest.fixture
def hung_prometheus(prometheus: Metrics, tmp_path: Path) -> Iterator[PrometheusServer]:
    server = PrometheusServer(
        [prometheus.exporter.target("rww")], scrape_interval=SCRAPE_S, workdir=tmp_path / "prom"
    )
    server.start()
    server.wait_for_targets()
    yield server
    server.resume()
    server.close()


def _with_status(kube: Kube, ns: str) -> int:
    items = kube.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
    return sum(1 for o in items if (o.get("status") or {}).get("conditions"))


def _metrics(kube: Kube, ns: str, name: str) -> tuple[str, str]:
    c = kube.condition(ns, name, "MetricsAvailable")
    return str(c.get("status")), str(c.get("reason"))


# 2,002 objects to create, 1,002 first ticks spread over the start, a clean stop of the operator.
@pytest.mark.timeout(480)
def test_a_hung_then_restarted_prometheus_under_1000_workloads(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    hung_prometheus: PrometheusServer,
    operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    hung = hung_prometheus
    signals.set(read_qps=900.0, write_qps=20.0)  # 2 replicas at 500/s each: what runs now
    signals.lag(range(6), 0.0)
    for i in range(3):
        prometheus.exporter.set("rww_lag_seconds", {"namespace": ns, "pod": f"billing-replica-{i}"}, 0.0)

    orders = workload_spec(hung.url)
    orders["prometheus"]["timeout"] = "1s"
    orders["replicas"]["targetReadQPSPerReplica"] = 500
    orders["behavior"]["scaleDown"] = {"stabilizationWindowSeconds": 0, "maxStep": 1}
    billing = workload_spec(prometheus.prometheus.url)
    billing["replicas"] = {
        "statefulSet": "billing-replica",
        "minReplicas": 1,
        "maxReplicas": 4,
        "targetReadQPSPerReplica": 500,
    }
    billing["pooler"] = {"kind": "EndpointSlice", "readService": "billing-read"}
    kube.create_statefulset(ns, "billing-replica", 2)
    kube.wait_pods(ns, "billing-replica", 2)

    objects: list[dict[str, Any]] = []
    for i in range(LOAD):
        objects.append(statefulset_body(f"load-{i}", 0))
        objects.append(
            workload_body(
                f"load-{i}",
                {
                    "primary": {"statefulSet": "db"},
                    "replicas": {"statefulSet": f"load-{i}", "minReplicas": 0, "maxReplicas": 1},
                    "prometheus": {"url": hung.url, "timeout": "1s"},
                    "metrics": {"preset": "postgres"},
                    "pooler": {"kind": "None"},
                    "behavior": {"intervalSeconds": 60},
                },
            )
        )
    objects.append(workload_body("orders", orders))
    objects.append(workload_body("billing", billing))
    manifest = tmp_path / "fleet.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    started = time.monotonic()
    subprocess.run(
        [kubectl_binary(), "--kubeconfig", str(kube.kubeconfig), "-n", ns, "create", "-f", str(manifest), "-o", "name"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    record(f"prometheus faults: {2 * LOAD + 2} objects created", f"{time.monotonic() - started:.0f} s")

    op = operator()
    started = time.monotonic()
    wait_for(
        f"all {LOAD + 2} workloads with a status",
        lambda: _with_status(kube, ns) == LOAD + 2,
        timeout=600,
        interval=2.0,
        last=lambda: _with_status(kube, ns),
    )
    record(f"prometheus faults: {LOAD + 2} workloads first reconciled", f"{time.monotonic() - started:.0f} s")
    wait_for("orders reading its signals", lambda: _metrics(kube, ns, "orders")[0] == "True", timeout=60)
    assert kube.replicas(ns, REPLICA_SET) == 2 and kube.replicas(ns, "billing-replica") == 2

    # The hang: the server accepts connections and never answers.
    hung.hang()
    wait_for(
        "orders' signals unknown (QueryTimeout)",
        lambda: _metrics(kube, ns, "orders") == ("False", "QueryTimeout"),
        timeout=60,
        last=lambda: _metrics(kube, ns, "orders"),
    )

    # billing's load rises: it scales up while 1,001 workloads wait on the hung server.
    signals.set(read_qps=1400.0, write_qps=20.0)
    rose = time.monotonic()
    wait_for(
        "billing scaling to 3 during the hang",
        lambda: kube.replicas(ns, "billing-replica") == 3,
        timeout=BILLING_ACTS_WITHIN_S,
    )
    record("prometheus faults: a healthy workload acts during the hang", f"{time.monotonic() - rose:.1f} s")
    # Nothing scales down on unknown signals (orders' scale-down window is 0): hold a while.
    hold_for(
        "orders at 2 replicas while its Prometheus hangs", lambda: kube.replicas(ns, REPLICA_SET) == 2, 5
    )
    assert _metrics(kube, ns, "orders") == ("False", "QueryTimeout")

    # The restart: orders reads 1,400/s and scales to 3.
    hung.resume()
    hung.stop()
    restarted = time.monotonic()
    hung.start()
    wait_for(
        "orders reading its signals again", lambda: _metrics(kube, ns, "orders")[0] == "True", timeout=60
    )
    wait_for("orders scaling to 3 after the restart", lambda: kube.replicas(ns, REPLICA_SET) == 3, timeout=60)
    record("prometheus faults: orders acts after the restart", f"{time.monotonic() - restarted:.1f} s")
    log = op.log_text()
    assert "Traceback" not in log, op.log_tail(60)
