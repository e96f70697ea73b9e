"""The ReadWriteWorkload models: defaults, the examples, and invalid specs rejected with messages a
user can act on. The CRD side of the same checks (schema, CEL) is in test_crd.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from tests.unit.builders import make_spec, spec_dict

from rwscaler.core.spec import (
    Consistency,
    MetricsPreset,
    Mode,
    PoolerKind,
    ReadWriteWorkload,
    ReadWriteWorkloadSpec,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "manifests" / "examples").glob("*.yaml"))


def workload_of(path: Path) -> dict[str, Any]:
    """The ReadWriteWorkload of an example file (it also holds what the workload needs to run)."""
    (workload,) = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "ReadWriteWorkload"]
    return dict(workload)


def load_examples() -> dict[str, dict[str, Any]]:
    return {path.stem: workload_of(path) for path in EXAMPLES}


def test_there_are_three_examples() -> None:
    assert {p.stem for p in EXAMPLES} >= {"catalog-read-heavy", "ingest-write-heavy", "ledger-strong"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_with_the_models(path: Path) -> None:
    manifest = workload_of(path)
    workload = ReadWriteWorkload.model_validate(manifest)
    assert workload.apiVersion == "rwscaler.io/v1alpha1"
    assert workload.kind == "ReadWriteWorkload"
    assert workload.metadata.name == manifest["metadata"]["name"]
    # Every example parses its durations (the core reads them as seconds).
    o = workload.spec.objectives
    assert o.read_latency_s > 0 and o.write_latency_s > 0 and o.max_lag_s > 0


def test_examples_show_what_they_are_for() -> None:
    ex = {name: ReadWriteWorkload.model_validate(m).spec for name, m in load_examples().items()}
    catalog = ex["catalog-read-heavy"]
    assert catalog.pooler.kind is PoolerKind.ENDPOINT_SLICE and catalog.pooler.readService
    assert catalog.replicas.targetReadQPSPerReplica is not None
    ingest = ex["ingest-write-heavy"]
    assert ingest.consistency is Consistency.EVENTUAL
    ledger = ex["ledger-strong"]
    assert ledger.consistency is Consistency.STRONG
    assert ledger.pooler.kind is PoolerKind.PGBOUNCER and ledger.pooler.pgbouncer is not None


def test_defaults_follow_the_design_sketch() -> None:
    spec = make_spec()
    assert spec.objectives.read_latency_s == pytest.approx(0.050)
    assert spec.objectives.write_latency_s == pytest.approx(0.020)
    assert spec.objectives.max_lag_s == pytest.approx(5.0)
    assert spec.consistency is Consistency.EVENTUAL
    assert spec.mode is Mode.ENFORCE
    assert spec.pooler.kind is PoolerKind.NONE
    assert spec.metrics.preset is MetricsPreset.POSTGRES
    b = spec.behavior
    assert (b.intervalSeconds, b.tolerance) == (15, 0.1)
    assert (b.scaleUp.stabilizationWindowSeconds, b.scaleUp.maxStep) == (0, 2)
    assert (b.scaleDown.stabilizationWindowSeconds, b.scaleDown.maxStep) == (300, 1)
    assert spec.replicas.minReplicas == 1
    assert spec.replicas.targetReadQPSPerReplica is None


def test_models_are_frozen() -> None:
    spec = make_spec()
    with pytest.raises(ValidationError):
        spec.consistency = Consistency.STRONG  # type: ignore[misc]


def test_spec_round_trips_through_json() -> None:
    spec = make_spec(replicas={"targetReadQPSPerReplica": 250.0}, consistency="bounded")
    again = ReadWriteWorkloadSpec.model_validate_json(spec.model_dump_json())
    assert again == spec


@pytest.mark.parametrize(
    ("overrides", "where", "words"),
    [
        pytest.param(
            {"replicas": {"minReplicas": 5, "maxReplicas": 2}},
            "replicas",
            "minReplicas must not exceed maxReplicas",
            id="min-over-max",
        ),
        pytest.param(
            {"behavior": {"scaleUp": {"stabilizationWindowSeconds": 0, "maxStep": -1}}},
            "behavior.scaleUp.maxStep",
            "greater than or equal to 1",
            id="negative-maxStep",
        ),
        pytest.param(
            {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0, "maxStep": 0}}},
            "behavior.scaleDown.maxStep",
            "greater than or equal to 1",
            id="zero-maxStep",
        ),
        pytest.param(
            {"replicas": {"minReplica": 1}}, "replicas.minReplica", "Extra inputs", id="unknown-field"
        ),
        pytest.param({"replicaz": {}}, "replicaz", "Extra inputs", id="unknown-top-level-field"),
        pytest.param(
            {"objectives": {"readLatencyP99": "5 seconds"}},
            "objectives.readLatencyP99",
            "5 seconds",
            id="bad-duration",
        ),
        pytest.param(
            {"objectives": {"maxReplicationLag": "-1s"}},
            "objectives.maxReplicationLag",
            "-1s",
            id="negative-duration",
        ),
        pytest.param(
            {"pooler": {"kind": "EndpointSlice"}},
            "pooler",
            "pooler kind EndpointSlice needs readService",
            id="endpointslice-without-readService",
        ),
        pytest.param(
            {"pooler": {"kind": "PgBouncer"}},
            "pooler",
            "pooler kind PgBouncer needs pgbouncer",
            id="pgbouncer-without-pgbouncer",
        ),
        pytest.param(
            {"metrics": {"preset": "custom"}},
            "metrics",
            "missing: readQPS, writeQPS, readLatencyP99, writeLatencyP99, replicationLag",
            id="custom-without-queries",
        ),
        pytest.param(
            {"metrics": {"preset": "custom", "queries": {"readQPS": "a", "writeQPS": "b"}}},
            "metrics",
            "missing: readLatencyP99, writeLatencyP99, replicationLag",
            id="custom-missing-some-queries",
        ),
        pytest.param({"consistency": "linearizable"}, "consistency", "eventual", id="bad-consistency"),
        pytest.param({"mode": "DryRun"}, "mode", "Recommend", id="bad-mode"),
        pytest.param({"replicas": {"maxReplicas": 0}}, "replicas.maxReplicas", "greater than", id="max-0"),
        pytest.param(
            {"replicas": {"targetReadQPSPerReplica": 0}},
            "replicas.targetReadQPSPerReplica",
            "greater than 0",
            id="zero-target",
        ),
        pytest.param({"behavior": {"tolerance": 1.0}}, "behavior.tolerance", "less than 1", id="tolerance-1"),
        pytest.param(
            {"behavior": {"readPool": {"reentryLagRatio": 0}}},
            "behavior.readPool.reentryLagRatio",
            "greater than 0",
            id="reentry-ratio-0",
        ),
    ],
)
def test_invalid_specs_are_rejected_with_readable_messages(
    overrides: dict[str, Any], where: str, words: str
) -> None:
    with pytest.raises(ValidationError) as err:
        ReadWriteWorkloadSpec.model_validate(spec_dict(**overrides))
    text = str(err.value)
    assert where in text, f"the message should name {where}: {text}"
    assert words in text, text
    assert err.value.error_count() == 1, "one mistake, one error"


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (("replicas", "maxReplicas"), "replicas.maxReplicas"),
        (("prometheus", "url"), "prometheus.url"),
    ],
)
def test_missing_required_fields_are_named(path: tuple[str, ...], where: str) -> None:
    data = spec_dict()
    node = data
    for key in path[:-1]:
        node[key] = dict(node[key])
        node = node[key]
    del node[path[-1]]
    with pytest.raises(ValidationError) as err:
        ReadWriteWorkloadSpec.model_validate(data)
    assert where in str(err.value) and "Field required" in str(err.value)


ZERO_DURATIONS = [
    pytest.param({"objectives": {"readLatencyP99": "0s"}}, "readLatencyP99", id="readLatencyP99"),
    pytest.param({"objectives": {"writeLatencyP99": "0ms"}}, "writeLatencyP99", id="writeLatencyP99"),
    pytest.param({"objectives": {"maxReplicationLag": "0s"}}, "maxReplicationLag", id="maxReplicationLag"),
    pytest.param({"prometheus": {"timeout": "0s"}}, "timeout", id="prometheus.timeout"),
    pytest.param({"metrics": {"staleness": "0m"}}, "staleness", id="metrics.staleness"),
]


@pytest.mark.parametrize(("overrides", "field"), ZERO_DURATIONS)
def test_zero_durations_are_rejected_by_the_models(overrides: dict[str, Any], field: str) -> None:
    """The CEL rule rejects them at admission; the models must too (a file loaded by the simulator)."""
    with pytest.raises(ValidationError) as err:
        ReadWriteWorkloadSpec.model_validate(spec_dict(**overrides))
    text = str(err.value)
    assert field in text and "must be a duration of at least" in text, text


def test_prometheus_url_scheme_is_checked_by_the_models() -> None:
    with pytest.raises(ValidationError) as err:
        ReadWriteWorkloadSpec.model_validate(spec_dict(prometheus={"url": "prometheus.monitoring:9090"}))
    assert "must be an http:// or https:// URL" in str(err.value)
    assert "prometheus.monitoring:9090" in str(err.value)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"replicas": {"minReplicas": 3, "maxReplicas": 3}}, id="min-equals-max"),
        pytest.param({"replicas": {"minReplicas": 0, "maxReplicas": 1}}, id="min-0"),
        pytest.param({"pooler": {"kind": "EndpointSlice", "readService": "db-read"}}, id="endpointslice"),
        pytest.param({"pooler": {"kind": "None", "readService": "unused"}}, id="none-with-extra"),
        pytest.param(
            {
                "metrics": {
                    "preset": "custom",
                    "queries": dict.fromkeys(
                        ("readQPS", "writeQPS", "readLatencyP99", "writeLatencyP99", "replicationLag"), "up"
                    ),
                }
            },
            id="custom-complete",
        ),
        pytest.param({"objectives": {"readLatencyP99": "1h30m"}}, id="compound-duration"),
        pytest.param({"objectives": {"readLatencyP99": "0.5s"}}, id="fractional-duration"),
        pytest.param({"behavior": {"tolerance": 0}}, id="tolerance-0"),
    ],
)
def test_valid_edge_specs_are_accepted(overrides: dict[str, Any]) -> None:
    make_spec(**overrides)


def test_manifest_rejects_wrong_kind_and_version() -> None:
    good = {"apiVersion": "rwscaler.io/v1alpha1", "kind": "ReadWriteWorkload", "spec": spec_dict()}
    ReadWriteWorkload.model_validate(good)
    with pytest.raises(ValidationError, match="kind"):
        ReadWriteWorkload.model_validate({**good, "kind": "Deployment"})
    with pytest.raises(ValidationError, match="apiVersion"):
        ReadWriteWorkload.model_validate({**good, "apiVersion": "rwscaler.io/v1"})
    with pytest.raises(ValidationError, match="spec"):
        ReadWriteWorkload.model_validate({k: v for k, v in good.items() if k != "spec"})


@pytest.mark.parametrize(
    "replicas",
    [
        {"maxReplicas": 3},
        {
            "maxReplicas": 3,
            "statefulSet": "a",
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "a"},
        },
    ],
    ids=["neither", "both"],
)
def test_the_read_side_names_exactly_one_scale_target(replicas: dict[str, object]) -> None:
    with pytest.raises(
        ValidationError, match=r"set exactly one of replicas\.statefulSet and replicas\.scaleTargetRef"
    ):
        ReadWriteWorkloadSpec.model_validate({"replicas": replicas})


def test_the_statefulset_shorthand_is_a_scale_target_ref_and_the_primary_is_optional() -> None:
    spec = ReadWriteWorkloadSpec.model_validate({"replicas": {"statefulSet": "db", "maxReplicas": 3}})
    target = spec.replicas.target
    assert (target.apiVersion, target.kind, target.name) == ("apps/v1", "StatefulSet", "db")
    # No primary StatefulSet apart: the primary is one of the target's pods, counted in its count.
    assert spec.primary_apart is None and spec.target_counts_primary


def test_the_target_counts_the_primary_unless_it_runs_apart() -> None:
    spec = ReadWriteWorkloadSpec.model_validate(
        {"primary": {"statefulSet": "db-primary"}, "replicas": {"statefulSet": "db", "maxReplicas": 3}}
    )
    assert spec.primary_apart == "db-primary" and not spec.target_counts_primary


@pytest.mark.parametrize(
    "replicas",
    [
        {"statefulSet": "db", "maxReplicas": 3},
        {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}, "maxReplicas": 3},
    ],
    ids=["shorthand", "scaleTargetRef"],
)
def test_a_primary_statefulset_that_is_the_target_itself_is_refused(replicas: dict[str, Any]) -> None:
    """One StatefulSet for both roles (Patroni, CloudNativePG) omits primary.statefulSet."""
    with pytest.raises(ValidationError, match=r"primary\.statefulSet names the scale target itself"):
        ReadWriteWorkloadSpec.model_validate({"primary": {"statefulSet": "db"}, "replicas": replicas})


def test_an_empty_primary_selector_is_refused() -> None:
    with pytest.raises(ValidationError, match="matches every pod"):
        ReadWriteWorkloadSpec.model_validate(
            {"primary": {"primarySelector": {}}, "replicas": {"statefulSet": "db", "maxReplicas": 3}}
        )
