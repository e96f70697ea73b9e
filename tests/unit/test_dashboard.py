"""The Grafana dashboard (manifests/grafana/rwscaler-dashboard.json, docs/dashboard.md): every
query parses, and reads only metrics docs/operator-metrics.md documents. The cluster test
(test_cluster_own_metrics.py) runs every query against a Prometheus scraping the operator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser

REPO = Path(__file__).resolve().parents[2]
BOARD = json.loads((REPO / "manifests" / "grafana" / "rwscaler-dashboard.json").read_text())
DOCUMENTED = set(re.findall(r"`(rwscaler_[a-z0-9_]+)`", (REPO / "docs" / "operator-metrics.md").read_text()))


def queries() -> list[str]:
    return [t["expr"] for p in BOARD["panels"] for t in p.get("targets", [])]


def test_every_query_parses_with_the_variables_filled_in() -> None:
    assert len(queries()) >= 20
    for expr in queries():
        promql_parser.parse(expr.replace("$namespace", "shop").replace("$name", "orders"))


def test_every_metric_it_reads_is_documented() -> None:
    used = {m for expr in queries() for m in re.findall(r"\brwscaler_[a-z0-9_]+", expr)}
    # A histogram's _bucket and _count series, and a counter's _total, are its family's.
    families = {re.sub(r"_(bucket|count|sum)$", "", m) for m in used}
    assert families <= DOCUMENTED, families - DOCUMENTED


def test_panels_have_unique_ids_and_each_a_query_and_the_variables_chain() -> None:
    ids = [p["id"] for p in BOARD["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p.get("targets") for p in BOARD["panels"] if p["type"] != "row")
    names = [v["name"] for v in BOARD["templating"]["list"]]
    assert names == ["datasource", "namespace", "name"]
