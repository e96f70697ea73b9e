"""The presets' templates (rwscaler.metrics.presets) and the source's query planning.

Planning is checked against a Prometheus address where nothing listens: every query fails at
once (connection refused), which is enough to count queries and see unknown-not-zero readings
without any server. The templates' PromQL syntax is checked against a real Prometheus in
tests/integration/prometheus/test_presets_grouped.py.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_metrics_promql import PGBOUNCER, wq

from rwscaler.core.observation import Aggregation, Signal, UnknownReason
from rwscaler.core.spec import MetricsPreset, ObjectivesSpec, ReadWriteWorkloadSpec, SignalQueries
from rwscaler.metrics.presets import all_templates, template_for
from rwscaler.metrics.prometheus import PrometheusMetricsSource
from rwscaler.metrics.promql import check_template, placeholders_in, render
from rwscaler.metrics.signals import MEMBER_LABEL, SCALAR_SIGNALS, Owner, SignalName, SignalTemplate
from rwscaler.metrics.source import WorkloadQuery


def dead_url() -> str:
    """A loopback URL where nothing listens (bound then closed): connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


OWNER_BY = {
    Owner.READ_DATABASE: ("namespace", "database"),
    Owner.WRITE_DATABASE: ("namespace", "database"),
    Owner.PRIMARY_SET: ("namespace", "statefulset"),
    Owner.READ_SET: ("namespace", "statefulset"),
    Owner.ALL_SETS: ("namespace", "statefulset"),
    Owner.REPLICA_PODS: ("namespace", "pod"),
    Owner.ALL_PODS: ("namespace", "pod"),
}


def every_template() -> list[tuple[str, SignalTemplate]]:
    return [(preset, t) for preset, templates in all_templates().items() for t in templates]


@pytest.mark.parametrize(("preset", "template"), every_template())
def test_templates_are_well_formed(preset: str, template: SignalTemplate) -> None:
    check_template(template.expr)
    if template.fresh is not None:
        check_template(template.fresh)
    # The answer is split by exactly the labels the owner's keys are made of (and a bundle's
    # member label, signals.bundle).
    own = template.by[:-1] if template.member is not None else template.by
    assert own == OWNER_BY[template.owner]
    if template.member is not None:
        assert template.by[-1] == MEMBER_LABEL and f'"{template.member}"' in template.expr
    assert f"by ({', '.join(own)}" in template.expr or template.owner is Owner.REPLICA_PODS
    # A template must select by namespace, or workloads of two namespaces would be mixed.
    assert "namespace" in placeholders_in(template.expr)
    # Grouped templates must never use ${name}: series carry no workload-name label to split on.
    assert "name" not in placeholders_in(template.expr)


def test_every_preset_answers_every_signal() -> None:
    for preset in MetricsPreset:
        for q in (wq(), wq(pooler=PGBOUNCER)):
            for signal in SignalName:
                got = template_for(preset, signal, q)
                if isinstance(got, Signal):
                    assert got.reason is UnknownReason.NOT_CONFIGURED
                    assert signal.value in got.message and "spec.metrics.queries" in got.message


def test_postgres_uses_the_pooler_databases_when_there_is_a_pooler() -> None:
    with_pooler = template_for(MetricsPreset.POSTGRES, SignalName.READ_QPS, wq(pooler=PGBOUNCER))
    direct = template_for(MetricsPreset.POSTGRES, SignalName.READ_QPS, wq())
    assert isinstance(with_pooler, SignalTemplate) and with_pooler.owner is Owner.READ_DATABASE
    assert isinstance(direct, SignalTemplate) and direct.owner is Owner.ALL_SETS
    latency = template_for(MetricsPreset.POSTGRES, SignalName.READ_LATENCY, wq(pooler=PGBOUNCER))
    assert isinstance(latency, SignalTemplate) and latency.aggregation is Aggregation.AVERAGE


def test_cnpg_without_pooler_has_no_latency() -> None:
    got = template_for(MetricsPreset.CNPG, SignalName.WRITE_LATENCY, wq())
    assert isinstance(got, Signal) and got.reason is UnknownReason.NOT_CONFIGURED


def test_grouped_render_of_a_preset_template_covers_every_workload() -> None:
    ledger = {**PGBOUNCER, "pgbouncer": {**PGBOUNCER["pgbouncer"], "database": "ledger"}}
    group = [wq("shop", "orders", pooler=PGBOUNCER), wq("bank", "ledger", pooler=ledger)]
    template = template_for(MetricsPreset.POSTGRES, SignalName.READ_QPS, group[0])
    assert isinstance(template, SignalTemplate)
    out = render(template.expr, group, "60s")
    assert 'namespace=~"bank|shop"' in out and 'database=~"ledger_ro|orders_ro"' in out


def many(n: int, url: str, metrics: dict[str, Any] | None = None) -> list[WorkloadQuery]:
    out = []
    for i in range(n):
        spec = ReadWriteWorkloadSpec.model_validate(
            {
                "primary": {"statefulSet": f"db{i}"},
                "replicas": {"statefulSet": f"db{i}-replica", "maxReplicas": 4},
                "prometheus": {"url": url, "timeout": "2s"},
                "metrics": metrics or {"preset": "postgres"},
            }
        )
        out.append(
            WorkloadQuery(
                f"ns{i % 7}/db{i}", f"ns{i % 7}", f"db{i}", spec, (f"db{i}-0",), (f"db{i}-replica-0",)
            )
        )
    return out


@pytest.mark.parametrize("n", [1, 10, 300])
async def test_preset_queries_per_read_do_not_grow_with_workloads(n: int) -> None:
    url = dead_url()  # nothing listens: refused at once
    source = PrometheusMetricsSource()
    try:
        readings = await source.read(many(n, url), time.time())
    finally:
        await source.close()
    assert source.last_stats is not None
    # The five signals, the role metric and one bundle of key metrics (docs/metrics.md), once
    # each for all the workloads.
    assert source.last_stats.queries == 7 and source.last_stats.grouped_queries == 7
    assert len(readings) == n
    for reading in readings.values():
        for sig in (reading.read_qps, reading.write_qps, reading.read_p99, reading.write_p99):
            assert sig.value is None and sig.reason is UnknownReason.UNREACHABLE
        assert all(lag.reason is UnknownReason.UNREACHABLE for lag in reading.replica_lag.values())
        assert "readQPS" in reading.read_qps.message


async def test_byte_lag_is_asked_only_of_workloads_with_the_objective() -> None:
    """docs/metrics.md: "The byte lag is asked of Prometheus only for workloads that set the
    objective (one query more per interval)"; the others read it as NotConfigured."""
    url = dead_url()
    plain = many(3, url)
    with_bytes = [
        replace(
            q, spec=q.spec.model_copy(update={"objectives": ObjectivesSpec(maxReplicationLagBytes="64Mi")})
        )
        for q in many(2, url)
    ]
    with_bytes = [replace(q, key=f"bytes/{q.name}", namespace="bytes") for q in with_bytes]
    source = PrometheusMetricsSource()
    try:
        alone = await source.read(plain, time.time())
        alone_stats = source.last_stats
        mixed = await source.read([*plain, *with_bytes], time.time() + 60)
        mixed_stats = source.last_stats
    finally:
        await source.close()
    assert alone_stats is not None and mixed_stats is not None
    assert (alone_stats.queries, mixed_stats.queries) == (7, 8)
    for reading in alone.values():
        assert all(b.reason is UnknownReason.NOT_CONFIGURED for b in reading.replica_lag_bytes.values())
    for q in with_bytes:
        lag_bytes = mixed[q.key].replica_lag_bytes
        assert set(lag_bytes) == set(q.replica_pods)
        assert all(b.reason is UnknownReason.UNREACHABLE for b in lag_bytes.values())


async def test_custom_queries_are_per_workload_but_identical_ones_are_asked_once() -> None:
    url = dead_url()
    per_workload = {
        "preset": "custom",
        "queries": {
            "readQPS": 'sum(rate(r{pod=~"${pods}"}[${window}]))',
            "writeQPS": 'sum(rate(w{pod=~"${primary_pods}"}[${window}]))',
            # The same text for every workload: one query for all of them.
            "readLatencyP99": "histogram_quantile(0.99, sum by (le) (rate(h_bucket[1m])))",
            "writeLatencyP99": "max(wl)",
            "replicationLag": 'lag{pod=~"${replica_pods}"}',
        },
    }
    source = PrometheusMetricsSource()
    try:
        readings = await source.read(many(4, url, per_workload), time.time())
    finally:
        await source.close()
    assert source.last_stats is not None
    assert source.last_stats.custom_queries == 4 * 3 + 2 and source.last_stats.grouped_queries == 0
    assert all(r.read_qps.reason is UnknownReason.UNREACHABLE for r in readings.values())


async def test_a_preset_signal_can_be_overridden_alone() -> None:
    url = dead_url()
    metrics = {"preset": "postgres", "queries": {"readLatencyP99": 'max(x{pod=~"${replica_pods}"})'}}
    source = PrometheusMetricsSource()
    try:
        await source.read(many(3, url, metrics), time.time())
    finally:
        await source.close()
    assert source.last_stats is not None
    # The other four signals, the role metric and the key-metrics bundle stay grouped.
    assert source.last_stats.grouped_queries == 6 and source.last_stats.custom_queries == 3


async def test_an_invalid_custom_template_is_a_query_error_not_an_exception() -> None:
    """Admission and the models refuse an unknown placeholder; a spec that holds one anyway (built
    without validation here, as an object stored before that rule would be) is a QueryError."""
    q = many(1, dead_url())[0]
    queries = SignalQueries.model_construct(writeQPS='x{pod=~"${nope}"}')
    metrics = q.spec.metrics.model_copy(update={"queries": queries})
    q = dataclasses.replace(q, spec=q.spec.model_copy(update={"metrics": metrics}))
    source = PrometheusMetricsSource()
    try:
        reading = (await source.read([q], time.time()))[q.key]
    finally:
        await source.close()
    assert reading.write_qps.reason is UnknownReason.QUERY_ERROR and "${nope}" in reading.write_qps.message


def test_scalar_signals_are_the_observation_order() -> None:
    assert [s.value for s in SCALAR_SIGNALS] == ["readQPS", "writeQPS", "readLatencyP99", "writeLatencyP99"]


def test_the_preset_reference_names_every_metric_the_presets_read() -> None:
    """docs/metrics.md is the users' reference: a metric a preset reads must be in it."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    functions = {
        "sum",
        "rate",
        "max",
        "min",
        "timestamp",
        "label_replace",
        "histogram_quantile",
        "by",
        "on",
        "or",
        "and",
    }
    for _preset, template in every_template():
        for text in (template.expr, template.fresh or ""):
            for metric in set(re.findall(r"([a-z_:][a-z0-9_:]*)\{", text)) - functions:
                assert metric in docs, f"{metric} is read by a preset but not documented in docs/metrics.md"
