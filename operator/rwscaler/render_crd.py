"""Render the ReadWriteWorkload CRD from the Pydantic models in `rwscaler.core.spec` (the spec) and
`rwscaler.core.status` (the status).

Pydantic's JSON Schema is close to, but not, a Kubernetes structural schema: it uses `$ref`,
`anyOf` with null for optional fields, JSON-Schema-2020 exclusive bounds and titles. This module
rewrites it into the OpenAPI v3 subset the API server accepts (every node typed, refs inlined,
no nulls, a map's value schema kept) and adds the status subresource and printer columns. Pure:
returns data; the CLI writes the file and a test checks the committed file is exactly this
rendering.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from rwscaler.core.field_types import WORKLOAD_NAME_RULE
from rwscaler.core.spec import GROUP, KIND, PLURAL, SHORT_NAME, VERSION, ReadWriteWorkloadSpec
from rwscaler.core.status import WorkloadStatus

_DROP = {"title"}


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
        elif key == "additionalProperties":
            # A map's value schema is kept; Pydantic's true/false for a model's extra keys is not
            # (a structural schema prunes keys it does not describe).
            if isinstance(value, dict):
                out["additionalProperties"] = _structural(value, defs)
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


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(mode="validation")
    defs = raw.pop("$defs", {})
    return _structural(raw, defs)


def spec_schema() -> dict[str, Any]:
    return _schema(ReadWriteWorkloadSpec)


def status_schema() -> dict[str, Any]:
    """The status's schema, from the model `rwscaler.core.status.WorkloadStatus`. Status keeps keys
    it does not describe (another tool's), and `memory` and a rule's `inputs` are kept whole."""
    return _schema(WorkloadStatus)


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
                            "x-kubernetes-validations": [WORKLOAD_NAME_RULE],
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

    header = (
        "# Generated by `rwscaler crd` from operator/rwscaler/core/spec.py and core/status.py;"
        " do not edit by hand.\n"
    )
    return header + yaml.dump(render_crd(), Dumper=_NoAliases, sort_keys=False, width=100)
