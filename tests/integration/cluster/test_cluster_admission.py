"""The CRD installs, and the API server rejects invalid ReadWriteWorkloads with readable messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster_helpers import GROUP, PLURAL, Kube, workload_spec
from kubernetes.client.exceptions import ApiException

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
        _spec(objectives__readLatencyP99="fast"), "spec.objectives.readLatencyP99", id="bad-duration"
    ),
    pytest.param(
        _spec(objectives__maxReplicationLag="0s"),
        "maxReplicationLag must be a positive duration",
        id="zero-duration",
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


@pytest.mark.parametrize(("spec", "expected"), INVALID)
def test_invalid_workloads_are_rejected_at_admission(
    kube: Kube, ns: str, spec: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ApiException) as caught:
        kube.create_workload(ns, "bad", spec)
    err = caught.value
    body = json.loads(err.body)
    message = body.get("message", "")
    assert err.status == 422 or (err.status == 400 and "unknown field" in message), message
    assert expected in message, message
    assert kube.workload(ns, "bad") is None


def test_a_valid_workload_is_accepted_with_defaults(kube: Kube, ns: str) -> None:
    spec = workload_spec(PROM)
    del spec["behavior"]
    created = kube.create_workload(ns, "ok", spec)
    assert created["spec"]["behavior"]["intervalSeconds"] == 15
    assert created["spec"]["consistency"] == "eventual"
