"""The CRD: the committed file is the rendering of the models, it is a structural schema the API
server accepts, the models and the CRD agree field by field (both ways, with defaults, bounds and
enums), the examples validate against it, and its CEL rules reject what the models reject.

The CEL rules are checked with a small evaluator for the subset they use (field access, has(),
duration(), startsWith, comparisons, && and ||), run on the object after structural defaulting,
as the API server evaluates them. Acceptance by a real API server comes with the cluster tier.
"""

from __future__ import annotations

import copy
import functools
import re
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from tests.unit.builders import spec_dict

from rwscaler.core.spec import GROUP, KIND, PLURAL, SHORT_NAME, VERSION, ReadWriteWorkloadSpec
from rwscaler.core.status import OWNED_KEYS, WorkloadStatus, dump_status
from rwscaler.render_crd import render_crd, render_crd_yaml

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "readwriteworkloads.rwscaler.io.yaml"
EXAMPLES = [*sorted((REPO / "manifests" / "examples").glob("*.yaml")), REPO / "hack" / "demo" / "shop.yaml"]

# apiextensions.k8s.io/v1 JSONSchemaProps keywords that a structural schema may use. Kubernetes
# also knows $ref, $schema, id, definitions, additionalItems, patternProperties and dependencies,
# but rejects them in a CRD (or in a structural schema); uniqueItems may not be true.
ALLOWED_KEYWORDS = {
    "type",
    "format",
    "description",
    "title",
    "default",
    "example",
    "externalDocs",
    "nullable",
    "enum",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "multipleOf",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "properties",
    "additionalProperties",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
}
TYPES = {"object", "array", "string", "integer", "number", "boolean"}


@functools.cache
def committed() -> dict[str, Any]:
    """The committed CRD, parsed once (callers never mutate it)."""
    data: dict[str, Any] = yaml.load(
        CRD_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    )
    return data


def version() -> dict[str, Any]:
    v: dict[str, Any] = committed()["spec"]["versions"][0]
    return v


def root_schema() -> dict[str, Any]:
    s: dict[str, Any] = version()["schema"]["openAPIV3Schema"]
    return s


def spec_node() -> dict[str, Any]:
    s: dict[str, Any] = root_schema()["properties"]["spec"]
    return s


def walk(node: dict[str, Any], path: str = "") -> typing.Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key, [])):
            yield from walk(sub, f"{path}<{key}{i}>")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{*}}")


# --- the committed file is the rendering -------------------------------------------------------


def test_committed_crd_is_the_rendering_of_the_models() -> None:
    assert CRD_PATH.read_text() == render_crd_yaml(), "run `rwscaler crd > crds/...` and commit the result"


def test_rendering_parses_back_to_the_same_data() -> None:
    assert yaml.safe_load(render_crd_yaml()) == render_crd()


def test_names_and_version() -> None:
    crd = committed()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{PLURAL}.{GROUP}" == "readwriteworkloads.rwscaler.io"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (KIND, PLURAL, [SHORT_NAME])
    assert crd["spec"]["group"] == GROUP == "rwscaler.io"
    assert crd["spec"]["scope"] == "Namespaced"
    versions = crd["spec"]["versions"]
    assert [v["name"] for v in versions] == [VERSION] == ["v1alpha1"]
    assert versions[0]["served"] and versions[0]["storage"]
    assert versions[0]["subresources"] == {"status": {}}


def test_printer_columns_name_status_fields_that_exist() -> None:
    """class, ratio, replicas, desired, max lag, Ready, age; each jsonPath resolves in the schema."""
    columns = version()["additionalPrinterColumns"]
    names = [c["name"] for c in columns]
    assert names == ["Class", "Ratio", "Replicas", "Desired", "Max-Lag", "Ready", "Age"]
    for column in columns:
        path = column["jsonPath"]
        if path.startswith(".metadata"):
            assert column["type"] == "date"
            continue
        node = root_schema()
        for part in re.sub(r"\[\?.*\]", "[]", path).strip(".").split("."):
            many = part.endswith("[]")
            node = node["properties"][part.removesuffix("[]")]
            if many:
                node = node["items"]
        expected = {"string": {"string"}, "integer": {"integer"}, "date": {"string"}}[column["type"]]
        assert node["type"] in expected, (path, node["type"])


# --- structural schema ---------------------------------------------------------------------------


def test_every_node_is_typed_and_uses_only_accepted_keywords() -> None:
    for path, node in walk(root_schema()):
        unknown = set(node) - ALLOWED_KEYWORDS
        assert not unknown, f"{path or '<root>'}: keywords Kubernetes does not accept: {unknown}"
        assert node.get("type") in TYPES, f"{path or '<root>'} has no valid type: {node.get('type')}"
        if node["type"] == "array":
            assert "items" in node, f"{path}: an array needs items"
        if "properties" in node or "additionalProperties" in node:
            assert node["type"] == "object", path


def test_structural_restrictions() -> None:
    for path, node in walk(root_schema()):
        assert "$ref" not in node, path
        assert not ("properties" in node and "additionalProperties" in node), (
            f"{path}: properties and additionalProperties are mutually exclusive"
        )
        assert node.get("uniqueItems") is not True, f"{path}: uniqueItems may not be true"
        assert "nullable" not in node or node["nullable"] is False, f"{path}: no nulls in the spec"
        for key in ("anyOf", "oneOf", "allOf"):
            for option in node.get(key, []):
                assert option.get("type") != "null", f"{path}: {key} with null"
                assert not {"type", "default", "description", "nullable"} & set(option), (
                    f"{path}: a {key} branch may only carry value validations"
                )
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if bound in node:
                assert isinstance(node[bound], bool), f"{path}: OpenAPI v3.0 {bound} is a boolean"
                assert limit in node, f"{path}: {bound} without {limit}"
        if node.get("type") in {"integer", "number"}:
            assert not {"minLength", "maxLength", "pattern"} & set(node), path
        if "required" in node:
            missing = set(node["required"]) - set(node.get("properties", {}))
            assert not missing, f"{path}: required names no property: {missing}"
        if node.get("x-kubernetes-list-type") == "map":
            items = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert items["properties"][key]["type"] in {"string", "integer", "boolean"}, path
                assert key in items.get("required", []) or "default" in items["properties"][key], path


def test_metadata_is_left_to_the_api_server() -> None:
    assert root_schema()["properties"]["metadata"] == {"type": "object"}


def test_spec_prunes_unknown_fields() -> None:
    """Unknown spec fields are pruned or rejected (strict field validation), never kept silently."""
    for path, node in walk(spec_node()):
        assert "x-kubernetes-preserve-unknown-fields" not in node, path


def test_defaults_validate_against_their_node() -> None:
    checked = 0
    for path, node in walk(root_schema()):
        if "default" in node:
            errors = [e.message for e in jsonschema.Draft4Validator(node).iter_errors(node["default"])]
            assert not errors, f"{path}: default {node['default']!r}: {errors}"
            checked += 1
    assert checked >= 20, "the spec has defaults on most of its fields"


def test_every_spec_field_has_a_description() -> None:
    missing = [
        path
        for path, node in walk(spec_node())
        # the items of an array of scalars are described by the array itself
        if not node.get("description") and not (path.endswith("[]") and node["type"] != "object")
    ]
    assert not missing


def test_every_status_field_has_a_description() -> None:
    status = root_schema()["properties"]["status"]
    missing = [
        f"status{path}"
        for path, node in walk(status)
        # the items of an array of scalars (the values of a map of scalars) are described by the
        # array (the map) itself
        if not node.get("description")
        and not ((path.endswith("[]") or path.endswith("{*}")) and node["type"] != "object")
    ]
    assert not missing


def status_node() -> dict[str, Any]:
    s: dict[str, Any] = root_schema()["properties"]["status"]
    return s


def test_the_status_schema_is_the_status_model() -> None:
    """Every key rwscaler owns under status is described, and status keeps other tools' keys."""
    assert list(status_node()["properties"]) == list(OWNED_KEYS)
    assert status_node()["x-kubernetes-preserve-unknown-fields"] is True
    assert status_node()["properties"]["memory"] == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": WorkloadStatus.model_fields["memory"].description,
    }


def pruned(node: dict[str, Any], value: Any) -> Any:
    """`value` after the API server's structural pruning by `node`: keys the schema does not
    describe are dropped unless the node preserves unknown fields or maps them."""
    if isinstance(value, dict):
        props = node.get("properties", {})
        values = node.get("additionalProperties")
        keep = node.get("x-kubernetes-preserve-unknown-fields") is True
        out = {}
        for key, sub in value.items():
            if key in props:
                out[key] = pruned(props[key], sub)
            elif isinstance(values, dict):
                out[key] = pruned(values, sub)
            elif keep:
                out[key] = sub
        return out
    if isinstance(value, list):
        return [pruned(node.get("items", {}), v) for v in value]
    return value


def _example(annotation: Any) -> Any:
    """A value for every field of a status model (and of the models inside it), as JSON."""
    inner, _ = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return {name: _example(info.annotation) for name, info in inner.model_fields.items()}
    if isinstance(inner, type) and issubclass(inner, Enum):
        return next(iter(inner)).value
    if typing.get_origin(inner) is list:
        (item,) = typing.get_args(inner)
        return [_example(item), _example(item)]
    if typing.get_origin(inner) is dict:
        _, value = typing.get_args(inner)
        return (
            {"a/b": _example(value), "c": _example(value)}
            if value is not typing.Any
            else {"k": [1, {"x": "y"}]}
        )
    return {int: 7, float: 0.5, str: "2026-12-05T08:00:00Z", bool: True}[inner]


def test_a_status_with_every_field_passes_the_schema_and_loses_nothing_to_pruning() -> None:
    status = _example(WorkloadStatus)
    assert set(status) == set(OWNED_KEYS)
    assert dump_status(WorkloadStatus.model_validate(status)) == status
    assert pruned(status_node(), status) == status
    assert not [e.message for e in jsonschema.Draft4Validator(status_node()).iter_errors(status)]
    foreign = {**status, "otherTool": {"x": 1}}
    assert pruned(status_node(), foreign) == foreign


def test_cel_rules_are_well_formed() -> None:
    count = 0
    for path, node in walk(root_schema()):
        for rule in node.get("x-kubernetes-validations", []):
            assert set(rule) <= {"rule", "message", "messageExpression", "reason", "fieldPath"}, path
            assert rule["rule"].strip() and rule["message"].strip(), path
            assert "\n" not in rule["message"], f"{path}: a CEL message is one line"
            count += 1
    assert count >= 9


# --- models and CRD agree, both ways -----------------------------------------------------------


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """(the type inside Optional and Annotated, the Annotated constraints)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        assert len(rest) == 1
        annotation = rest[0]
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *metadata = typing.get_args(annotation)
        return inner, metadata
    return annotation, []


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {k: v for k, v in value.model_dump(mode="json").items() if v is not None}
    if isinstance(value, Enum):
        return value.value
    return value


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    return value


_SCALARS = {int: "integer", float: "number", str: "string", bool: "boolean"}


def _check_field(path: str, info: FieldInfo, node: dict[str, Any]) -> None:
    inner, annotated = _unwrap(info.annotation)
    assert node.get("description") == info.description, f"{path}: description differs"
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        assert node["type"] == "object", path
        _check_model(path, inner, node)
    elif isinstance(inner, type) and issubclass(inner, Enum):
        assert node["type"] == "string", path
        assert node["enum"] == [e.value for e in inner], f"{path}: enum differs"
    elif typing.get_origin(inner) is list:
        # A list of models (checked as models) or of scalars (the items carry the scalar's type
        # and bounds).
        assert node["type"] == "array", path
        (item,) = typing.get_args(inner)
        item_type, item_meta = _unwrap(item)
        if isinstance(item_type, type) and issubclass(item_type, BaseModel):
            assert node["items"]["type"] == "object", f"{path}[]"
            _check_model(f"{path}[]", item_type, node["items"])
        else:
            assert node["items"]["type"] == _SCALARS[item_type], f"{path}[]: {item_type}"
            _check_bounds(f"{path}[]", item_meta, node["items"])
    elif typing.get_origin(inner) is dict:
        # A map of scalars: the values carry the scalar's type and bounds (a structural schema
        # cannot bound the keys).
        assert node["type"] == "object" and "properties" not in node, path
        _, value = typing.get_args(inner)
        value_type, value_meta = _unwrap(value)
        assert node["additionalProperties"]["type"] == _SCALARS[value_type], f"{path}{{*}}: {value_type}"
        _check_bounds(f"{path}{{*}}", value_meta, node["additionalProperties"])
    else:
        assert node["type"] == _SCALARS[inner], f"{path}: {inner} is not {node['type']}"
    # Defaults: the model's default is the CRD's default (None means no default).
    if info.is_required() or info.get_default() is None:
        assert "default" not in node, f"{path}: the CRD has a default the model lacks"
    else:
        assert "default" in node, f"{path}: the model's default {info.get_default()!r} is not in the CRD"
        assert node["default"] == _strip_none(_jsonable(info.get_default())), f"{path}: default differs"
    _check_bounds(path, [*info.metadata, *annotated], node)


def _check_bounds(path: str, metadata: list[Any], node: dict[str, Any]) -> None:
    """Bounds and string (or list) length constraints."""
    for meta in metadata:
        if isinstance(meta, Ge):
            assert node["minimum"] == meta.ge and not node.get("exclusiveMinimum"), path
        elif isinstance(meta, Gt):
            assert node["minimum"] == meta.gt and node["exclusiveMinimum"] is True, path
        elif isinstance(meta, Le):
            assert node["maximum"] == meta.le and not node.get("exclusiveMaximum"), path
        elif isinstance(meta, Lt):
            assert node["maximum"] == meta.lt and node["exclusiveMaximum"] is True, path
        else:
            for attr, key in (
                ("min_length", "minItems" if node.get("type") == "array" else "minLength"),
                ("max_length", "maxItems" if node.get("type") == "array" else "maxLength"),
                ("pattern", "pattern"),
            ):
                if getattr(meta, attr, None) is not None:
                    assert node[key] == getattr(meta, attr), f"{path}: {key} differs"


def _check_model(path: str, model: type[BaseModel], node: dict[str, Any]) -> None:
    fields = model.model_fields
    props = node.get("properties", {})
    assert set(fields) == set(props), (
        f"{path or 'spec'}: only in the model {set(fields) - set(props)}, "
        f"only in the CRD {set(props) - set(fields)}"
    )
    required = {name for name, info in fields.items() if info.is_required()}
    assert required == set(node.get("required", [])), f"{path or 'spec'}: required differs"
    extra = model.model_config.get("json_schema_extra")
    rules = extra.get("x-kubernetes-validations", []) if isinstance(extra, dict) else []
    assert node.get("x-kubernetes-validations", []) == rules, f"{path}: CEL rules differ"
    for name, info in fields.items():
        _check_field(f"{path}.{name}", info, props[name])


def test_every_model_field_is_in_the_crd_and_every_crd_field_in_the_models() -> None:
    _check_model("", ReadWriteWorkloadSpec, spec_node())


def test_agreement_walk_notices_a_difference() -> None:
    """The walk above is not vacuous: a CRD with one default changed fails it."""
    node = copy.deepcopy(spec_node())
    node["properties"]["behavior"]["properties"]["tolerance"]["default"] = 0.2
    with pytest.raises(AssertionError, match="tolerance: default differs"):
        _check_model("", ReadWriteWorkloadSpec, node)
    node = copy.deepcopy(spec_node())
    node["properties"]["replicas"]["properties"]["extra"] = {"type": "string"}
    with pytest.raises(AssertionError, match="only in the CRD"):
        _check_model("", ReadWriteWorkloadSpec, node)


# --- examples and invalid specs against the schema -----------------------------------------------


@functools.cache
def schema_validator() -> jsonschema.Draft4Validator:
    # OpenAPI v3.0 bounds (boolean exclusiveMinimum) are Draft 4's; x-kubernetes-* are ignored.
    return jsonschema.Draft4Validator(root_schema())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_against_the_crd_schema(path: Path) -> None:
    (manifest,) = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "ReadWriteWorkload"]
    errors = [e.message for e in schema_validator().iter_errors(manifest)]
    assert not errors
    ReadWriteWorkloadSpec.model_validate(manifest["spec"])  # and the CEL rules: the cluster tier


def manifest_of(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": "x"}, "spec": spec}


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        pytest.param(
            {"behavior": {"scaleUp": {"stabilizationWindowSeconds": 0, "maxStep": -1}}}, "-1", id="neg"
        ),
        pytest.param({"consistency": "linearizable"}, "linearizable", id="bad-enum"),
        pytest.param({"replicas": {"targetReadQPSPerReplica": 0}}, "0", id="exclusive-minimum"),
        pytest.param({"behavior": {"tolerance": 1}}, "1", id="exclusive-maximum"),
        pytest.param(
            {"pooler": {"kind": "EndpointSlice", "readService": "r" * 64}}, "r" * 64, id="long-service"
        ),
    ],
)
def test_schema_rejects_what_the_models_reject(overrides: dict[str, Any], words: str) -> None:
    spec = spec_dict(**overrides)
    errors = [e.message for e in schema_validator().iter_errors(manifest_of(spec))]
    assert errors and any(words in e for e in errors), errors
    with pytest.raises(ValidationError):
        ReadWriteWorkloadSpec.model_validate(spec)


# --- CEL -----------------------------------------------------------------------------------------
# The rules run on the real API server in the cluster tier: tests/integration/cluster/
# test_cluster_admission.py (each mistake, one message) and test_cluster_admission_differential.py
# (generated specs: the API server and the models agree on every one).


def test_every_cross_field_check_has_a_cel_rule() -> None:
    messages = [r["message"] for _, n in walk(root_schema()) for r in n.get("x-kubernetes-validations", [])]
    for expected in (
        "minReplicas must not exceed maxReplicas",
        "pooler kind EndpointSlice needs readService",
        "pooler kind PgBouncer needs pgbouncer",
        "preset custom needs every query",
        "must be a duration of at least 1ms",
        "must be a duration of at least 1s",
        "must be an http:// or https:// URL",
        "must be a lowercase DNS-1123 subdomain",
        "must be a DNS-1035 label",
        "must be a Secret or ConfigMap key",
        "must be a PromQL expression, not empty",
        "must be a positive byte quantity",
        "primary.statefulSet names the scale target itself",
        "objectives.maxReplicationLagBytes needs metrics.queries.replicationLagBytes",
        "metadata.name must be at most 63 characters",
    ):
        assert any(m.startswith(expected) for m in messages), expected
