"""The CRD installs, and the API server rejects invalid ReadWriteWorkloads with one readable message each.

Expectations are docs/operator.md "Admission: what the API server refuses", as literals; every
refused spec is refused by the models too (`ReadWriteWorkload.model_validate`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster_helpers import GROUP, PLURAL, Kube, workload_spec
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from rwscaler.core.spec import ReadWriteWorkloadSpec

PROM = "http://127.0.0.1:9"  # never contacted: these workloads are refused before anything runs


def test_the_crd_is_installed_and_served(kube: Kube) -> None:
    crd = kube.apiext.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True"
    assert crd.spec.names.short_names == ["rww"]
    version = crd.spec.versions[0]
    assert version.name == "v1alpha1" and version.subresources.status is not None


def _spec(**changes: Any) -> dict[str, Any]:
    spec = workload_spec(PROM)
    for path, value in changes.items():
        node = spec
        keys = path.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return spec


INVALID = [
    pytest.param(
        _spec(replicas={"statefulSet": "db-replica", "minReplicas": 5, "maxReplicas": 2}),
        "minReplicas must not exceed maxReplicas",
        id="min-above-max",
    ),
    pytest.param(
        _spec(behavior__scaleUp={"stabilizationWindowSeconds": 0, "maxStep": -1}),
        "spec.behavior.scaleUp.maxStep",
        id="negative-step",
    ),
    pytest.param(
        _spec(replicas__surprise=True), 'unknown field "spec.replicas.surprise"', id="unknown-field"
    ),
    pytest.param(
        _spec(objectives__readLatencyP99="fast"), "must be a duration of at least 1ms", id="bad-duration"
    ),
    pytest.param(
        _spec(objectives__readLatencyP99="99999999999h"),
        "must be a duration of at least 1ms",
        id="huge-duration",
    ),
    pytest.param(
        _spec(objectives__maxReplicationLag="0s"), "must be a duration of at least 1ms", id="zero-duration"
    ),
    pytest.param(
        _spec(metrics__staleness="0.0001ms"), "must be a duration of at least 1s", id="tiny-staleness"
    ),
    pytest.param(_spec(prometheus__timeout="0s"), "must be a duration of at least 1ms", id="zero-timeout"),
    pytest.param(_spec(prometheus__url="http://"), "must be an http:// or https:// URL", id="url-no-host"),
    pytest.param(
        _spec(prometheus__url="http://bad host:9090"), "must be an http:// or https:// URL", id="url-space"
    ),
    pytest.param(
        _spec(prometheus__url="http://prom:0"), "must be an http:// or https:// URL", id="url-port-0"
    ),
    pytest.param(
        _spec(prometheus__url="http://prom:99999"), "must be an http:// or https:// URL", id="url-port-big"
    ),
    pytest.param(
        _spec(prometheus__url="prom:9090"), "must be an http:// or https:// URL", id="url-no-scheme"
    ),
    pytest.param(_spec(prometheus__url="ftp://prom"), "must be an http:// or https:// URL", id="url-ftp"),
    pytest.param(
        _spec(primary__statefulSet="db-replica"),
        "primary.statefulSet names the scale target itself",
        id="same-sts",
    ),
    pytest.param(
        _spec(pooler__readService="Db_Read"), "must be a DNS-1035 label", id="service-not-dns-label"
    ),
    pytest.param(
        _spec(replicas__statefulSet="DB"), "must be a lowercase DNS-1123 subdomain", id="sts-uppercase"
    ),
    pytest.param(_spec(replicas__statefulSet=""), "must be a lowercase DNS-1123 subdomain", id="sts-empty"),
    pytest.param(
        _spec(prometheus__bearerTokenSecret={"name": "tok", "key": "a/b"}),
        "must be a Secret or ConfigMap key",
        id="secret-key-slash",
    ),
    pytest.param(
        _spec(objectives__maxReplicationLagBytes="64MB", metrics__queries__replicationLagBytes="lag_bytes"),
        "must be a positive byte quantity",
        id="bytes-unit",
    ),
    pytest.param(
        _spec(metrics__queries__readQPS=""), "must be a PromQL expression, not empty", id="promql-empty"
    ),
    pytest.param(
        _spec(metrics__queries__readQPS='sum(x{pod=~"${podz}"})'),
        "using only the placeholders",
        id="promql-unknown-placeholder",
    ),
    pytest.param(
        _spec(pooler={"kind": "EndpointSlice"}),
        "pooler kind EndpointSlice needs readService",
        id="endpointslice-without-service",
    ),
    pytest.param(
        _spec(pooler={"kind": "PgBouncer"}),
        "pooler kind PgBouncer needs pgbouncer",
        id="pgbouncer-without-fields",
    ),
    pytest.param(
        _spec(metrics={"preset": "custom", "queries": {"readQPS": "x"}}),
        "preset custom needs every query",
        id="custom-without-queries",
    ),
]


def _refusal(kube: Kube, ns: str, name: str, spec: dict[str, Any]) -> tuple[int, str, list[Any]]:
    with pytest.raises(ApiException) as caught:
        kube.create_workload(ns, name, spec)
    body = json.loads(caught.value.body)
    return caught.value.status, body.get("message", ""), (body.get("details") or {}).get("causes") or []


@pytest.mark.parametrize(("spec", "expected"), INVALID)
def test_invalid_workloads_are_rejected_at_admission(
    kube: Kube, ns: str, spec: dict[str, Any], expected: str
) -> None:
    status, message, causes = _refusal(kube, ns, "bad", spec)
    assert status == 422 or (status == 400 and "unknown field" in message), message
    assert expected in message, message
    assert len(causes) <= 1, f"one message per mistake, got {len(causes)}: {message}"
    assert "type conversion error" not in message and "google.protobuf" not in message, message
    assert kube.workload(ns, "bad") is None
    with pytest.raises(ValidationError):  # and the models refuse it too
        ReadWriteWorkloadSpec.model_validate(spec)


def test_a_name_longer_than_a_label_value_is_refused(kube: Kube, ns: str) -> None:
    status, message, _ = _refusal(kube, ns, "w" * 64, workload_spec(PROM))
    assert status == 422 and "metadata.name must be at most 63 characters" in message, message
    kube.create_workload(ns, "w" * 63, workload_spec(PROM))  # 63 is a label value's limit: fine


def test_an_uppercase_scheme_is_a_url_go_reads_as_lowercase(kube: Kube, ns: str) -> None:
    created = kube.create_workload(ns, "upper", _spec(prometheus__url="HTTP://Prometheus.Monitoring:9090"))
    assert created["spec"]["prometheus"]["url"] == "HTTP://Prometheus.Monitoring:9090"


def test_a_partial_scaling_block_keeps_the_other_defaults(kube: Kube, ns: str) -> None:
    spec = workload_spec(PROM)
    spec["behavior"] = {"scaleUp": {"maxStep": 3}, "scaleDown": {"stabilizationWindowSeconds": 60}}
    created = kube.create_workload(ns, "partial", spec)
    behavior = created["spec"]["behavior"]
    assert behavior["scaleUp"] == {"maxStep": 3, "stabilizationWindowSeconds": 0}
    assert behavior["scaleDown"] == {"maxStep": 1, "stabilizationWindowSeconds": 60}


def test_a_valid_workload_is_accepted_with_defaults(kube: Kube, ns: str) -> None:
    spec = workload_spec(PROM)
    del spec["behavior"]
    created = kube.create_workload(ns, "ok", spec)
    assert created["spec"]["behavior"]["intervalSeconds"] == 15
    assert created["spec"]["consistency"] == "eventual"
