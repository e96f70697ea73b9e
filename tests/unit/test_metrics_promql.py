"""PromQL templating (rwscaler.metrics.promql): placeholders, escaping, unions over a group."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.metrics.promql import (
    NEVER_MATCHES,
    PLACEHOLDERS,
    TemplateError,
    alternation,
    check_template,
    format_window,
    is_bare_selector,
    render,
    with_freshness,
)
from rwscaler.metrics.source import WorkloadQuery

PGBOUNCER = {
    "kind": "PgBouncer",
    "pgbouncer": {
        "deployment": "pgb",
        "configMap": "pgb",
        "database": "orders",
        "adminSecret": {"name": "s", "key": "k"},
    },
}


def wq(
    namespace: str = "shop",
    name: str = "orders",
    *,
    replicas: tuple[str, ...] = ("orders-pg-replica-0", "orders-pg-replica-1"),
    pooler: dict[str, Any] | None = None,
) -> WorkloadQuery:
    spec: dict[str, Any] = {
        "primary": {"statefulSet": f"{name}-pg"},
        "replicas": {"statefulSet": f"{name}-pg-replica", "maxReplicas": 4},
        "prometheus": {"url": "http://prometheus:9090"},
    }
    if pooler is not None:
        spec["pooler"] = pooler
    return WorkloadQuery(
        key=f"{namespace}/{name}",
        namespace=namespace,
        name=name,
        spec=ReadWriteWorkloadSpec.model_validate(spec),
        primary_pods=(f"{name}-pg-0",),
        replica_pods=replicas,
    )


def test_alternation_sorts_dedupes_and_escapes_regex_and_string() -> None:
    assert alternation(["b", "a", "b"]) == "a|b"
    # RE2 metacharacters are escaped, and the backslash itself is doubled for the PromQL string.
    assert alternation(["a.b"]) == "a\\\\.b"
    assert alternation(['x"y']) == 'x\\"y'


def test_empty_alternation_matches_nothing_not_the_missing_label() -> None:
    rendered = alternation([])
    assert rendered == NEVER_MATCHES.replace("\\", "\\\\")
    # The regex really matches no string, empty included (Prometheus anchors it).
    pattern = re.compile(f"^(?:{NEVER_MATCHES})$")
    assert not pattern.match("")
    assert not pattern.match("orders-pg-0")


def test_render_for_one_workload() -> None:
    out = render('x{namespace=~"${namespace}", pod=~"${replica_pods}"}[${window}]', [wq()], "30s")
    assert out == 'x{namespace=~"shop", pod=~"orders-pg-replica-0|orders-pg-replica-1"}[30s]'


def test_render_for_a_group_is_the_union() -> None:
    group = [
        wq("shop", "orders"),
        wq("shop", "carts", replicas=("carts-pg-replica-0",)),
        wq("bank", "ledger"),
    ]
    out = render('x{namespace=~"${namespace}", pod=~"${primary_pods}"}', group, "1m")
    assert out == 'x{namespace=~"bank|shop", pod=~"carts-pg-0|ledger-pg-0|orders-pg-0"}'


def test_every_placeholder_renders() -> None:
    template = " ".join("${" + p + "}" for p in PLACEHOLDERS)
    out = render(template, [wq(pooler=PGBOUNCER)], "15s")
    assert "${" not in out
    assert out.split(" ") == [
        "shop",
        "orders",
        "orders-pg",
        "orders-pg-replica",
        "orders-pg-0",
        "orders-pg-replica-0|orders-pg-replica-1",
        "orders-pg-replica-0|orders-pg-replica-1",
        "orders-pg-0|orders-pg-replica-0|orders-pg-replica-1",
        "orders_ro",
        "orders",
        "15s",
    ]


def test_unknown_placeholder_is_an_error_naming_it() -> None:
    with pytest.raises(TemplateError, match=r"\$\{podz\}"):
        check_template('x{pod=~"${podz}"}')


def test_database_placeholders_need_a_pgbouncer_pooler() -> None:
    with pytest.raises(TemplateError, match=r"spec\.pooler\.pgbouncer"):
        render('x{database=~"${read_database}"}', [wq()], "1m")


def test_explicit_pgbouncer_databases_win() -> None:
    pooler = {
        **PGBOUNCER,
        "pgbouncer": {**PGBOUNCER["pgbouncer"], "readDatabase": "ro", "writeDatabase": "rw"},
    }
    assert render("${read_database} ${write_database}", [wq(pooler=pooler)], "1m") == "ro rw"


@pytest.mark.parametrize(
    ("expr", "bare"),
    [
        ("up", True),
        ('pg_lag_seconds{pod=~"a|b"}', True),
        ('  x:y_z{a="1"} ', True),
        ("max(x)", False),
        ("rate(x[1m])", False),
        ("x + y", False),
        ("x[5m]", False),
    ],
)
def test_bare_selector(expr: str, bare: bool) -> None:
    assert is_bare_selector(expr) is bare


def test_format_window_is_whole_seconds() -> None:
    assert format_window(10) == "10s"
    assert format_window(1.4) == "1s"
    assert format_window(0.2) == "1s"


def test_with_freshness_tags_both_halves() -> None:
    out = with_freshness("A", "B")
    assert (
        out
        == 'label_replace(A, "rwscaler_part", "value", "", "") or label_replace(B, "rwscaler_part", "ts", "", "")'
    )
