"""Render the ReadWriteWorkload CRD from the Pydantic models in `rwscaler.core.spec`.

Pydantic's JSON Schema is close to, but not, a Kubernetes structural schema: it uses `$ref`,
`anyOf` with null for optional fields, JSON-Schema-2020 exclusive bounds and titles. This module
rewrites it into the OpenAPI v3 subset the API server accepts (every node typed, refs inlined,
no nulls) and adds the status subresource and printer columns. Pure: returns data; the CLI writes
the file and a test checks the committed file is exactly this rendering.
"""

from __future__ import annotations

from typing import Any

import yaml

from rwscaler.core.spec import GROUP, KIND, PLURAL, SHORT_NAME, VERSION, ReadWriteWorkloadSpec

_DROP = {"title", "additionalProperties"}


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").split("/")[-1]]
        merged = {**target, **node}
        if "description" in node:
            merged["description"] = node["description"]
        node = merged
    out: dict[str, Any] = {}
    if "anyOf" in node:
        # Optional[X] is X, not required: Kubernetes has no nulls in a structural schema.
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot make a structural schema of a union: {options}")
        out.update(_structural(options[0], defs))
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out["properties"] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out["items"] = _structural(value, defs)
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "default":
            if value is not None:
                out["default"] = _strip_none(value)
        else:
            out[key] = value
    if "type" not in out:
        raise ValueError(f"untyped schema node: {node}")
    return out


def spec_schema() -> dict[str, Any]:
    raw = ReadWriteWorkloadSpec.model_json_schema(mode="validation")
    defs = raw.pop("$defs", {})
    return _structural(raw, defs)


def _condition_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "status"],
        "description": "A condition, as in Kubernetes' metav1.Condition.",
        "properties": {
            "type": {"type": "string", "description": "Condition type, e.g. Ready or WriteBottleneck."},
            "status": {
                "type": "string",
                "enum": ["True", "False", "Unknown"],
                "description": "True, False or Unknown.",
            },
            "reason": {"type": "string", "description": "CamelCase reason for the last transition."},
            "message": {"type": "string", "description": "Human-readable explanation."},
            "lastTransitionTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the status last changed (not when it was last checked).",
            },
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The generation the condition was computed for.",
            },
        },
    }


def status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "What rwscaler observed, decided and did, with its reasons.",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The spec generation this status was computed for.",
            },
            "workloadClass": {"type": "string", "description": "Class from the read:write ratio."},
            "readWriteRatio": {"type": "string", "description": "Reads per write, e.g. 42.5 or inf."},
            "replicas": {
                "type": "object",
                "description": "Replica counts of the read side.",
                "properties": {
                    "current": {"type": "integer", "description": "The replica StatefulSet's spec.replicas."},
                    "desired": {"type": "integer", "description": "Where rwscaler is taking the read side."},
                    "ready": {"type": "integer", "description": "Ready replica pods."},
                },
            },
            "maxReplicationLag": {"type": "string", "description": "Highest replica lag seen, e.g. 1.2s."},
            "readEndpoints": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The read pool rwscaler decided: the pods it routes reads to (the primary when "
                "the pool fell back). In Recommend mode or when paused, what it would route to.",
            },
            "lastScaleTime": {
                "type": "string",
                "format": "date-time",
                "description": "When rwscaler last changed the replica count.",
            },
            "conditions": {
                "type": "array",
                "description": "Ready, MetricsAvailable, ReadCapacityExhausted, WriteBottleneck, "
                "CapacityLimit, ReplicationLagHigh, ScalingLimited.",
                "items": _condition_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "recommendations": {
                "type": "array",
                "description": "What rwscaler advises beyond what it does itself.",
                "items": {
                    "type": "object",
                    "description": "One piece of advice.",
                    "properties": {
                        "type": {"type": "string", "description": "e.g. AddReadReplicas, ShardWrites."},
                        "message": {
                            "type": "string",
                            "description": "The advice, with the numbers behind it.",
                        },
                        "replicas": {"type": "integer", "description": "Replica count it refers to, if any."},
                    },
                },
            },
        },
    }


def render_crd() -> dict[str, Any]:
    spec = spec_schema()
    spec["description"] = "Desired behavior of the read side: bounds, objectives, routing and scaling."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": [SHORT_NAME],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Class", "type": "string", "jsonPath": ".status.workloadClass"},
                        {"name": "Ratio", "type": "string", "jsonPath": ".status.readWriteRatio"},
                        {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas.current"},
                        {"name": "Desired", "type": "integer", "jsonPath": ".status.replicas.desired"},
                        {"name": "Max-Lag", "type": "string", "jsonPath": ".status.maxReplicationLag"},
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A replicated database whose read side rwscaler sizes and routes.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "rwscaler.io/v1alpha1"},
                                "kind": {"type": "string", "description": "ReadWriteWorkload"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    """The CRD as the YAML text committed in crds/ (no anchors, stable key order)."""

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    header = "# Generated by `rwscaler crd` from operator/rwscaler/core/spec.py; do not edit by hand.\n"
    return header + yaml.dump(render_crd(), Dumper=_NoAliases, sort_keys=False, width=100)
