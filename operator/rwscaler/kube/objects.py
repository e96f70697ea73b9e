"""Pure builders and parsers of the Kubernetes objects every part of the adapter shares.

Used by `KubeCluster`, the scale targets (`kube/targets`) and the pooler packages: owner
references, Events, status merge patches, label selectors, pods. No I/O, so the unit tests check
every object. Everything rwscaler creates carries an owner reference to its ReadWriteWorkload
(controller, not blocking deletion), so deleting the workload deletes it through the garbage
collector, with no finalizer. The EndpointSlice pooler's own objects are in
`rwscaler.pooler.endpointslice.objects`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from rwscaler.boundary import OwnerRef, PodInfo, Port
from rwscaler.core.durations import rfc3339
from rwscaler.core.vocabulary import Event

MANAGED_BY = "rwscaler.io"
COMPONENT = "rwscaler"
# The label an EndpointSlice's writer puts on it (the EndpointSlice pooler's slices: MANAGED_BY).
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
EVENT_MESSAGE_LIMIT = 1024


def owner_reference(owner: OwnerRef) -> dict[str, Any]:
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        # True would need update rights on the workload's finalizers; the GC deletes either way.
        "blockOwnerDeletion": False,
    }


def kept_copy(body: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a watched object to keep, without `metadata.managedFields`: nothing in
    rwscaler reads them, and they are about half of a workload's body as the watch delivers it
    (28 of 56 KB in Python objects; 1,000 workloads kept 28 MB of them)."""
    meta = body.get("metadata")
    if not isinstance(meta, Mapping) or "managedFields" not in meta:
        return copy.deepcopy(dict(body))
    rest = {k: v for k, v in body.items() if k != "metadata"}
    kept = {k: v for k, v in meta.items() if k != "managedFields"}
    return {**copy.deepcopy(rest), "metadata": copy.deepcopy(kept)}


def service_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the EndpointSlice pooler reads of a Service (its owners, selector, type, ports): all
    the handlers' kopf index keeps of each Service it watches."""
    meta = body.get("metadata") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
            "ownerReferences": list(meta.get("ownerReferences") or []),
        },
        "spec": dict(body.get("spec") or {}),
    }


def rwscalers_endpoint_slice(labels: Mapping[str, str] | None) -> bool:
    """An EndpointSlice rwscaler writes (the only ones the handlers' index keeps)."""
    return (labels or {}).get(MANAGED_BY_LABEL) == MANAGED_BY


def owned_by(obj: Mapping[str, Any], owner: OwnerRef) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(r, dict) and r.get("uid") == owner.uid for r in refs)


def event(owner: OwnerRef, ev: Event, now: float, instance: str) -> dict[str, Any]:
    """A core/v1 Event about the workload (what `kubectl describe` shows)."""
    stamp = rfc3339(now)
    message = (
        ev.message
        if len(ev.message) <= EVENT_MESSAGE_LIMIT
        else ev.message[: EVENT_MESSAGE_LIMIT - 3] + "..."
    )
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{owner.name}.", "namespace": owner.namespace},
        "involvedObject": {
            "apiVersion": owner.api_version,
            "kind": owner.kind,
            "name": owner.name,
            "namespace": owner.namespace,
            "uid": owner.uid,
        },
        "type": ev.type.value,
        "reason": ev.reason.value,
        "message": message,
        "source": {"component": COMPONENT},
        "reportingComponent": f"{MANAGED_BY}/operator",
        "reportingInstance": instance[:128],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns `old` into `new` (keys absent from new -> null)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif key not in old or before != value:
            patch[key] = value
    return patch


def label_selector(selector: Mapping[str, Any]) -> str:
    """A LabelSelector object as the `labelSelector` query string of a list request."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def ordinal_suffix(pod_name: str, prefix: str) -> int | None:
    """N of a pod named `<prefix>-<N>` (a StatefulSet's ordinal, a CloudNativePG serial), else None."""
    match = re.fullmatch(re.escape(prefix) + r"-(\d+)", pod_name)
    return int(match.group(1)) if match else None


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    """The uid of the object's controller (its ownerReference with controller: true), if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return str(ref.get("uid", ""))
    return None


def container_ports(spec: Mapping[str, Any]) -> tuple[Port, ...]:
    """The container ports of a pod spec (or a pod template's spec)."""
    ports: list[Port] = []
    for container in spec.get("containers") or []:
        for p in container.get("ports") or []:
            if isinstance(p.get("containerPort"), int):
                ports.append(
                    Port(str(p.get("name") or ""), p["containerPort"], str(p.get("protocol") or "TCP"))
                )
    return tuple(ports)


def _ready(meta: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    return not meta.get("deletionTimestamp") and any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def ready_pod_ip(obj: Mapping[str, Any]) -> str | None:
    """The pod's IP when it is Ready and not terminating, else None."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    ip = status.get("podIP")
    return str(ip) if ip and _ready(meta, status) else None


def pod_info(obj: Mapping[str, Any], rank: int | None = None) -> PodInfo:
    """The pod as rwscaler sees it; `rank` is its place in its target's removal order."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    ip = status.get("podIP")
    labels = meta.get("labels") or {}
    return PodInfo(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        ready=_ready(meta, status),
        ip=str(ip) if ip else None,
        labels={str(k): str(v) for k, v in labels.items()},
        ports=container_ports(obj.get("spec") or {}),
        rank=rank,
    )


def terminating(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))
