"""The pods the operator's watch has delivered, in place of a LIST per tick: trimmed and selected locally.

`rwscaler.handlers` registers a kopf index over the pods of the watched namespaces (kopf lists
them once, then follows the watch, and keeps the index until the operator stops); the scale
targets (`kube/targets`) read a target's pods from it with `select` instead of asking the API
server every tick. Only what rwscaler reads of a pod is kept (`trimmed`), so the index stays
small. Label selectors are the strings a scale subresource publishes (`status.selector`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# namespace -> the trimmed pods of that namespace (kopf's Index of Stores is such a mapping).
PodIndex = Mapping[str, Iterable[Mapping[str, Any]]]
PodSource = Callable[[str, str], list[dict[str, Any]]]


def trimmed(body: Mapping[str, Any]) -> dict[str, Any]:
    """What `kube.objects` reads of a pod: name, uid, labels, controller, deletion, IP, Ready, ports."""
    meta, status, spec = body.get("metadata") or {}, body.get("status") or {}, body.get("spec") or {}
    owners = [
        {"uid": ref.get("uid"), "controller": True}
        for ref in meta.get("ownerReferences") or []
        if isinstance(ref, Mapping) and ref.get("controller")
    ]
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "labels": dict(meta.get("labels") or {}),
            "ownerReferences": owners,
            "deletionTimestamp": meta.get("deletionTimestamp"),
        },
        "status": {
            "podIP": status.get("podIP"),
            "conditions": [
                {"type": "Ready", "status": c.get("status")}
                for c in status.get("conditions") or []
                if isinstance(c, Mapping) and c.get("type") == "Ready"
            ],
        },
        "spec": {
            "containers": [
                {"ports": [dict(p) for p in c.get("ports") or [] if isinstance(p, Mapping)]}
                for c in spec.get("containers") or []
                if isinstance(c, Mapping)
            ]
        },
    }


def serving_state(pod: Mapping[str, Any]) -> tuple[object, ...]:
    """What decides whether a pod can serve reads: a change of it wakes the workloads at once."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    ready = [c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return (meta.get("uid"), status.get("podIP"), tuple(ready), bool(meta.get("deletionTimestamp")))


# One requirement of a selector string: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`.
_REQUIREMENT = re.compile(
    r"\s*(?:(?P<not>!)\s*(?P<absent>[^\s,=!()]+)"
    r"|(?P<key>[^\s,=!()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s,()]*)"
    r"|\s+(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?)\s*(?:,|$)"
)


@dataclass(frozen=True, slots=True)
class _Requirement:
    key: str
    op: str  # "in" (also = and ==), "notin" (also !=), "exists", "absent"
    values: frozenset[str] = frozenset()

    def holds(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "absent":
            return self.key not in labels
        # Kubernetes' semantics: `in` needs the label, `notin` (and !=) also selects pods without it.
        return (labels.get(self.key) in self.values) == (self.op == "in")


def _requirements(selector: str) -> list[_Requirement]:
    out: list[_Requirement] = []
    pos = 0
    while pos < len(selector):
        m = _REQUIREMENT.match(selector, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read the label selector {selector!r} at {selector[pos:]!r}")
        pos = m.end()
        if m["absent"] is not None:
            out.append(_Requirement(m["absent"], "absent"))
        elif m["op"] is not None:
            out.append(_Requirement(m["key"], "notin" if m["op"] == "!=" else "in", frozenset({m["value"]})))
        elif m["set"] is not None:
            values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
            out.append(_Requirement(m["key"], m["set"], values))
        else:
            out.append(_Requirement(m["key"], "exists"))
    return out


def matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether a pod with these labels is selected (an empty selector selects every pod)."""
    return all(r.holds(labels) for r in _requirements(selector))


def source(index: PodIndex) -> PodSource:
    """`select(namespace, selector)` over an index of trimmed pods."""

    def select(namespace: str, selector: str) -> list[dict[str, Any]]:
        requirements = _requirements(selector)
        pods = index.get(namespace) or ()
        return [
            dict(pod)
            for pod in pods
            if all(r.holds((pod.get("metadata") or {}).get("labels") or {}) for r in requirements)
        ]

    return select
