"""The chart's files, checked without helm: the CRD copy, the values schema against the default
values, and the rendered manifests in manifests/ (their header and least privilege). That the
rendered files equal a fresh `helm template` is in test_chart_manifests.py (needs helm).
"""

from __future__ import annotations

import json

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from chart_helpers import CHART, REPO
from rbac_policy import LEASE_PERMISSIONS, WORKLOAD_PERMISSIONS, assert_exactly
from tools.render_manifests import HEADER, OUTPUTS

CRD_NAME = "readwriteworkloads.rwscaler.io.yaml"


def test_the_chart_crd_is_a_byte_copy_of_the_generated_crd() -> None:
    generated = (REPO / "crds" / CRD_NAME).read_bytes()
    copied = (CHART / "crds" / CRD_NAME).read_bytes()
    assert copied == generated, "the chart's CRD is stale: run `make chart-crd`"


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "rwscaler"
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == "0.1.0"


@pytest.fixture(scope="module")
def schema() -> dict:
    loaded = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(loaded)
    return loaded


def test_the_default_values_satisfy_the_schema(schema: dict) -> None:
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)


def _objects_with_properties(node: object, where: str = "$") -> list[tuple[str, dict]]:
    found = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append((where, node))
        for key, value in node.items():
            found += _objects_with_properties(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _objects_with_properties(value, f"{where}[{i}]")
    return found


def test_every_object_the_schema_defines_refuses_unknown_keys(schema: dict) -> None:
    defined = _objects_with_properties(schema)
    assert len(defined) > 10
    loose = [where for where, node in defined if node.get("additionalProperties") is not False]
    assert not loose, f"additionalProperties is not false at {loose}"


@pytest.mark.parametrize(
    "values",
    [
        {"replicas": "two"},
        {"replicas": -1},
        {"replicaCount": 2},
        {"image": {"repo": "x"}},
        {"logLevel": "verbose"},
        {"watchNamespaces": "team-a"},
        {"defaultIntervalSeconds": 15},
        {"metrics": {"serviceMonitor": {"enabled": "yes"}}},
        {"securityContext": {"runAsRoot": True}},
    ],
    ids=json.dumps,
)
def test_the_schema_rejects_wrong_types_and_unknown_keys(schema: dict, values: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, schema)


@pytest.mark.parametrize("rel", sorted(OUTPUTS.values()))
def test_rendered_manifests_say_they_are_rendered(rel: str) -> None:
    assert (REPO / rel).read_text().startswith(HEADER)


def _load(rel: str) -> dict:
    return yaml.safe_load((REPO / rel).read_text())


def test_the_rendered_manifests_keep_the_names_the_cluster_tests_use() -> None:
    sa = _load(OUTPUTS["ServiceAccount"])
    assert (sa["metadata"]["namespace"], sa["metadata"]["name"]) == ("rwscaler-system", "rwscaler")
    assert _load(OUTPUTS["ClusterRole"])["metadata"]["name"] == "rwscaler"
    binding = _load(OUTPUTS["ClusterRoleBinding"])
    assert binding["roleRef"]["name"] == "rwscaler"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rwscaler", "namespace": "rwscaler-system"}
    ]
    namespace = yaml.safe_load((REPO / "manifests/rbac/namespace.yaml").read_text())
    assert namespace["metadata"]["name"] == "rwscaler-system"


def test_the_rendered_roles_are_least_privilege() -> None:
    assert_exactly(_load(OUTPUTS["ClusterRole"])["rules"], WORKLOAD_PERMISSIONS)
    lease_role = _load(OUTPUTS["Role"])
    assert lease_role["metadata"]["namespace"] == "rwscaler-system"
    assert_exactly(lease_role["rules"], LEASE_PERMISSIONS)
