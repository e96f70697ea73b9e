"""The objects of the EndpointSlice pooler: the selector-less read Service and its EndpointSlice.

Pure builders and comparisons, used by `router.py`; the unit tests check every object the
router would send. Both carry an owner reference to the ReadWriteWorkload (`kube.objects`), so
the garbage collector deletes them with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rwscaler.boundary import Endpoint, OwnerRef, Port
from rwscaler.kube.objects import COMPONENT, MANAGED_BY, MANAGED_BY_LABEL, owner_reference

WORKLOAD_LABEL = "rwscaler.io/workload"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_PORT = Port(name="db", port=5432)


def labels(owner: OwnerRef) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": COMPONENT, WORKLOAD_LABEL: owner.name}


def _port_name(port: Port) -> str:
    return port.name or f"port-{port.port}"


def service_ports(ports: Sequence[Port]) -> list[dict[str, Any]]:
    return [
        {"name": _port_name(p), "port": p.port, "targetPort": p.port, "protocol": p.protocol}
        for p in (ports or (DEFAULT_PORT,))
    ]


def slice_ports(ports: Sequence[Port]) -> list[dict[str, Any]]:
    return [
        {"name": _port_name(p), "port": p.port, "protocol": p.protocol} for p in (ports or (DEFAULT_PORT,))
    ]


def read_service(owner: OwnerRef, name: str, ports: Sequence[Port]) -> dict[str, Any]:
    """A selector-less ClusterIP Service: its endpoints are the EndpointSlice rwscaler writes."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": labels(owner),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {"type": "ClusterIP", "ports": service_ports(ports)},
    }


def endpoint_slice_name(service: str) -> str:
    return f"{service}-rwscaler"[:253]


def endpoint_slice(
    owner: OwnerRef, service: str, ports: Sequence[Port], endpoints: Sequence[Endpoint]
) -> dict[str, Any]:
    """One IPv4 EndpointSlice of the read Service listing exactly `endpoints`."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": endpoint_slice_name(service),
            "namespace": owner.namespace,
            "labels": {**labels(owner), MANAGED_BY_LABEL: MANAGED_BY, SERVICE_NAME_LABEL: service},
            "ownerReferences": [owner_reference(owner)],
        },
        "addressType": "IPv4",
        "ports": slice_ports(ports),
        "endpoints": [
            {
                "addresses": [e.ip],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "targetRef": {"kind": "Pod", "namespace": owner.namespace, "name": e.pod, "uid": e.uid},
            }
            for e in endpoints
        ],
    }


def _sorted_endpoints(items: object) -> list[tuple[tuple[str, ...], str]]:
    out = []
    for e in items if isinstance(items, list) else []:
        if isinstance(e, dict):
            ref = e.get("targetRef") or {}
            ready = (e.get("conditions") or {}).get("ready")
            out.append((tuple(e.get("addresses") or ()), f"{ref.get('name')}/{ready}"))
    return sorted(out)


def _port_tuples(items: object) -> list[tuple[str, str, str]]:
    return sorted(
        (str(p.get("name") or ""), str(p.get("port")), str(p.get("protocol") or "TCP"))
        for p in (items if isinstance(items, list) else [])
        if isinstance(p, dict)
    )


def slice_differs(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether the existing slice needs rewriting to become `desired` (order does not matter)."""
    meta, want = existing.get("metadata") or {}, desired["metadata"]
    labels = meta.get("labels") or {}
    return (
        any(labels.get(k) != v for k, v in want["labels"].items())
        or existing.get("addressType") != desired["addressType"]
        or _port_tuples(existing.get("ports")) != _port_tuples(desired["ports"])
        or _sorted_endpoints(existing.get("endpoints")) != _sorted_endpoints(desired["endpoints"])
        or not any(
            isinstance(r, dict) and r.get("uid") == want["ownerReferences"][0]["uid"]
            for r in meta.get("ownerReferences") or []
        )
    )


def service_ports_differ(existing: Mapping[str, Any], ports: Sequence[Port]) -> bool:
    have = [
        (p.get("name"), p.get("port"), p.get("protocol", "TCP"))
        for p in (existing.get("spec") or {}).get("ports") or []
        if isinstance(p, dict)
    ]
    want = [(p["name"], p["port"], p["protocol"]) for p in service_ports(ports)]
    return sorted(have, key=str) != sorted(want, key=str)
