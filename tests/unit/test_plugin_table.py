"""`kubectl rwscaler status`'s table, from statuses as the operator writes them (report.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from tests.unit.builders import READ_OBJECTIVE, make_obs, no_stabilization

from rwscaler import plugin_table
from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.roles import RoleSource
from rwscaler.core.status import (
    StatusCondition,
    StatusPrimary,
    StatusReplicaCounts,
    StatusScaleTarget,
)
from rwscaler.core.vocabulary import EffectiveMode, ReadyReason
from rwscaler.report import problem_status, render_status

NOW = 1_700_000_000.0


def _workload(
    name: str = "orders-db",
    namespace: str = "shop",
    mode: EffectiveMode = EffectiveMode.ENFORCE,
    primary: StatusPrimary | None = None,
    **obs: Any,
) -> dict[str, Any]:
    """A ReadWriteWorkload whose status is what the operator's tick renders for `obs`."""
    observation = make_obs(**obs)
    plan = decide(no_stabilization(), observation, Memory(), NOW)
    status = render_status(plan, observation, previous={}, generation=1, now=NOW, mode=mode, primary=primary)
    return {"metadata": {"name": name, "namespace": namespace}, "status": status}


def _cells(line: str) -> list[str]:
    return re.split(r"\s{3,}", line.strip())


def test_a_healthy_workload_fills_every_column() -> None:
    row = plugin_table.row(_workload())
    assert row.name == "orders-db"
    assert row.workload_class == "ReadHeavy"
    assert row.ratio == "10.0:1"
    assert row.replicas == "2/2"
    assert row.primary == "-"  # the tick did not say (render_status without primary)
    assert row.read_pool == "db-replica-0,db-replica-1"
    assert row.max_lag == "100ms"
    assert row.mode == "Enforce"
    assert row.not_ok == "-"


def test_the_table_has_the_columns_in_order_and_namespace_only_with_all_namespaces() -> None:
    objects = [_workload("b", "zz"), _workload("a", "shop")]
    one = plugin_table.render(objects, all_namespaces=False).splitlines()
    assert _cells(one[0]) == [
        "NAME", "CLASS", "RATIO", "REPLICAS", "PRIMARY", "READ POOL", "MAX LAG", "MODE", "NOT OK"
    ]  # fmt: skip
    every = plugin_table.render(objects, all_namespaces=True).splitlines()
    assert _cells(every[0])[0] == "NAMESPACE"
    assert [_cells(line)[:2] for line in every[1:]] == [["shop", "a"], ["zz", "b"]]
    assert _cells(every[1]) == [
        "shop", "a", "ReadHeavy", "10.0:1", "2/2", "-", "db-replica-0,db-replica-1", "100ms", "Enforce", "-"
    ]  # fmt: skip
    # Aligned: every column starts at the same offset on every line; nothing trails.
    starts = {line.index("ReadHeavy") for line in every[1:]}
    assert starts == {every[0].index("CLASS")}
    assert all(line == line.rstrip() for line in every)


def test_unknown_metrics_show_as_unknown_never_zero() -> None:
    row = plugin_table.row(_workload(read_qps=None, write_qps=None, lags=[None, None]))
    assert row.ratio == "unknown"
    assert row.workload_class == "Unknown"
    assert row.max_lag == "unknown"
    assert "MetricsAvailable=False(" in row.not_ok
    assert "0" not in (row.ratio, row.max_lag)


def test_not_ok_conditions_are_listed_with_their_reason() -> None:
    row = plugin_table.row(_workload(read_p99=2 * READ_OBJECTIVE, lags=[0.1, 30.0]))
    assert "ReadCapacityExhausted=True(" in row.not_ok
    assert "Ready=" not in row.not_ok  # Ready=True is OK


@pytest.mark.parametrize(
    ("condition", "shown"),
    [
        ({"type": "Ready", "status": "True", "reason": "Decided"}, None),
        ({"type": "Ready", "status": "False", "reason": "Paused"}, "Ready=False(Paused)"),
        ({"type": "Ready", "status": "Unknown"}, "Ready=Unknown"),
        ({"type": "MetricsAvailable", "status": "True", "reason": "Ok"}, None),
        (
            {"type": "MetricsAvailable", "status": "False", "reason": "PrometheusUnreachable"},
            "MetricsAvailable=False(PrometheusUnreachable)",
        ),
        ({"type": "ReadCapacityExhausted", "status": "False", "reason": "X"}, None),
        (
            {"type": "WriteBottleneck", "status": "True", "reason": "WriteLatency"},
            "WriteBottleneck=True(WriteLatency)",
        ),
        ({"type": "CapacityLimit", "status": "Unknown", "reason": "NoData"}, "CapacityLimit=Unknown(NoData)"),
        ({"type": "ReplicationLagHigh", "status": "True", "reason": "Lag"}, "ReplicationLagHigh=True(Lag)"),
        ({"type": "ScalingLimited", "status": "False", "reason": "X"}, None),
        (
            {"type": "ScalingLimited", "status": "True", "reason": "AtMaxReplicas"},
            "ScalingLimited=True(AtMaxReplicas)",
        ),
    ],
)
def test_what_is_ok_for_each_condition(condition: dict[str, str], shown: str | None) -> None:
    parsed = [StatusCondition.model_validate(condition)]
    assert plugin_table.not_ok_conditions(parsed) == ([shown] if shown else [])


def test_a_workload_without_status_is_all_dashes() -> None:
    row = plugin_table.row({"metadata": {"name": "new", "namespace": "shop"}})
    cells = row.cells(with_namespace=False)
    assert cells[1:-1] == ("-",) * 7
    assert "no status yet" in row.not_ok
    assert "0" not in "".join(cells)


def test_a_problem_only_status_keeps_missing_values_as_dashes() -> None:
    status = problem_status(
        {}, generation=1, now=NOW, reason=ReadyReason.PRIMARY_NOT_FOUND, message="the primary is gone"
    )
    row = plugin_table.row({"metadata": {"name": "w", "namespace": "s"}, "status": status})
    assert (row.workload_class, row.ratio, row.replicas, row.primary, row.read_pool, row.max_lag) == (
        "-",
    ) * 6
    assert row.not_ok == "Ready=False(PrimaryStatefulSetNotFound)"


def test_a_missing_side_of_the_replica_count_is_a_dash() -> None:
    assert plugin_table.replicas_cell(StatusReplicaCounts(current=3)) == "3/-"
    assert plugin_table.replicas_cell(StatusReplicaCounts(current=0, desired=1)) == "0/1"
    assert plugin_table.replicas_cell(StatusReplicaCounts()) == "-"
    assert plugin_table.replicas_cell(None) == "-"


def test_a_long_read_pool_shows_a_count() -> None:
    names = [f"orders-pg-replica-{i}" for i in range(5)]
    assert plugin_table.pool_cell(names) == "5 endpoints"
    assert plugin_table.pool_cell(names[:1]) == "orders-pg-replica-0"
    assert plugin_table.pool_cell([]) == "none"
    assert plugin_table.pool_cell(None) == "-"


def test_the_ratio_reads_as_read_to_write() -> None:
    assert plugin_table.ratio_cell("150") == "150:1"
    assert plugin_table.ratio_cell("0.25") == "0.25:1"
    assert plugin_table.ratio_cell("inf") == "inf:1"
    assert plugin_table.ratio_cell("unknown") == "unknown"
    assert plugin_table.ratio_cell(None) == "-"


def test_many_not_ok_conditions_show_the_definite_ones_first_then_a_count() -> None:
    row = plugin_table.row(_workload(read_qps=None, write_qps=None, lags=[None, None]))
    shown = row.not_ok.split(",")
    assert len(shown) == plugin_table.NOT_OK_SHOWN + 1
    # Ready and MetricsAvailable False, three sides and the lag Unknown, ScalingLimited: 4 shown.
    assert shown[-1] == "+3 more"
    assert shown[0].startswith("Ready=False(") and shown[1].startswith("MetricsAvailable=False(")
    unknown = ["=Unknown(" in c for c in shown[:-1]]
    assert unknown == sorted(unknown) and any(unknown)  # the definite ones first


def test_a_pause_the_operator_has_not_reported_yet_is_pausing_or_resuming() -> None:
    obj = _workload()
    obj["metadata"]["annotations"] = {"rwscaler.io/paused": "true"}
    assert plugin_table.row(obj).mode == "Pausing"
    paused = _workload(mode=EffectiveMode.PAUSED)
    assert plugin_table.row(paused).mode == "Resuming"
    paused["metadata"]["annotations"] = {"rwscaler.io/paused": "true"}
    assert plugin_table.row(paused).mode == "Paused"


def test_the_primary_column_names_the_pod_status_says_is_primary() -> None:
    obj = _workload(primary=StatusPrimary(pod="orders-2", source=RoleSource.LABEL))
    assert plugin_table.row(obj).primary == "orders-2"
    line = plugin_table.render([obj], all_namespaces=False).splitlines()[1]
    assert _cells(line)[4] == "orders-2"


def test_a_status_of_another_version_still_makes_a_row() -> None:
    """Foreign keys are ignored, a value of the wrong type is a dash, a condition without a
    status is left out: the row never fails."""
    status = {
        "workloadClass": "ReadHeavy",
        "readWriteRatio": 12,  # not a string: unreadable
        "replicas": {"current": 3, "future": True},
        "readEndpoints": ["a"],
        "scaleTarget": StatusScaleTarget(kind="Cluster", name="o").model_dump(exclude_none=True),
        "conditions": [{"type": "Ready"}, {"type": "Shiny", "status": "True", "reason": "New"}],
        "somethingNew": {"x": 1},
    }
    row = plugin_table.row({"metadata": {"name": "w", "namespace": "s"}, "status": status})
    assert (row.workload_class, row.ratio, row.replicas, row.read_pool) == ("ReadHeavy", "-", "3/-", "a")
    assert row.not_ok == "Shiny=True(New)"
