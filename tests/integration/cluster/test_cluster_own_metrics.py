"""The operator's own /metrics (docs/operator-metrics.md), scraped by a real Prometheus while the
operator runs on the local control plane: what a dashboard and the alerts read."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cluster_helpers import REPLICA_SET, Kube, Metrics, OperatorProcess, Signals, replica_pod, workload_spec
from tests.support.ports import free_port
from tests.support.prometheus import PrometheusServer, ScrapeTarget

NAME = "orders"
DASHBOARD = Path(__file__).resolve().parents[3] / "manifests" / "grafana" / "rwscaler-dashboard.json"


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard, its variables' queries too."""
    board = json.loads(DASHBOARD.read_text())
    out = [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):  # label_values(SELECTOR, label): the selector must have series
            selector = query["query"].removeprefix("label_values(").rsplit(",", 1)[0]
            out.append((f"variable {variable['name']}", selector))
    assert len(out) > 20
    return out


def test_a_prometheus_scraping_the_operator_sees_each_workload_and_the_ticks(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[..., OperatorProcess],
) -> None:
    signals.set(read_qps=600.0, write_qps=60.0)
    signals.lag([0], 0.2)
    signals.lag([1], 60.0)  # over the 5 s objective: out of the read pool
    spec = workload_spec(
        prometheus.prometheus.url, replicas={"statefulSet": REPLICA_SET, "minReplicas": 2, "maxReplicas": 3}
    )
    kube.create_workload(ns, NAME, spec)
    port = free_port()
    operator("--metrics-address", f"127.0.0.1:{port}")
    kube.wait_condition(ns, NAME, "MetricsAvailable", "True")
    with PrometheusServer([ScrapeTarget("rwscaler", f"127.0.0.1:{port}")], scrape_interval=1.0) as prom:
        prom.wait_for_targets(timeout=60)
        w = f'namespace="{ns}", name="{NAME}"'

        def value(expr: str) -> float | None:
            return prom.wait_for(expr, timeout=60)[0].value

        assert value(f"rwscaler_replicas_current{{{w}}}") == 2
        assert value(f'rwscaler_qps{{{w}, side="read"}}') == 600.0
        assert value(f"rwscaler_read_write_ratio{{{w}}}") == 10.0
        assert value(f'rwscaler_read_pool_member{{{w}, pod="{replica_pod(0)}"}}') == 1
        assert value(f'rwscaler_read_pool_member{{{w}, pod="{replica_pod(1)}"}}') == 0
        assert value(f'rwscaler_replication_lag_seconds{{{w}, pod="{replica_pod(0)}"}}') == 0.2
        assert value(f"rwscaler_replication_lag_max_seconds{{{w}}}") == 60.0
        assert value(f"rwscaler_replication_lag_objective_seconds{{{w}}}") == 5.0
        assert value(f'rwscaler_signal_known{{{w}, signal="readQPS"}}') == 1
        assert value('rwscaler_reconcile_duration_seconds_count{outcome="decided"}') >= 1
        assert value(f"sum(rwscaler_decisions_total{{{w}}})") >= 1

        # Every query of the dashboard (docs/dashboard.md) parses and answers with a series
        # for this workload (the variables filled in as Grafana would).
        for panel, expr in dashboard_queries():
            filled = expr.replace("$namespace", ns).replace("$name", NAME)
            assert prom.wait_for(filled, timeout=60), f"{panel}: {filled}"

        kube.kubectl("delete", "readwriteworkload", NAME, "-n", ns, "--wait=false")
        prom.wait_for(f"rwscaler_last_tick_timestamp_seconds{{{w}}}", lambda s: not s, timeout=60)
