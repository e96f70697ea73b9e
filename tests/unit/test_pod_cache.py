"""kube/pod_cache.py: label selectors as Kubernetes reads them, trimmed pods that keep what rwscaler
reads, and what counts as a change of whether a pod can serve reads.

Selector semantics are Kubernetes' (k8s.io/apimachinery labels.Parse): `in` and `=` need the label,
`notin` and `!=` also select pods without it; written here as literals."""

from __future__ import annotations

from typing import Any

import pytest

from rwscaler.kube import objects
from rwscaler.kube.pod_cache import matches, serving_state, source, trimmed

LABELS = {"app": "db", "tier": "replica"}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ("app=db", True),
        ("app==db", True),
        ("app!=db", False),
        ("app=web", False),
        ("zone!=a", True),  # no such label: != selects it
        ("app in (web,db)", True),
        ("app in (web)", False),
        ("zone in (a)", False),  # `in` needs the label
        ("zone notin (a)", True),
        ("app notin (db)", False),
        ("tier", True),
        ("zone", False),
        ("!zone", True),
        ("!tier", False),
        ("app=db,tier=replica", True),
        ("app=db, tier in (primary)", False),
        ("", True),
    ],
)
def test_selectors_select_as_kubernetes_does(selector: str, selected: bool) -> None:
    assert matches(selector, LABELS) is selected


def test_an_unreadable_selector_is_an_error_not_every_pod() -> None:
    with pytest.raises(ValueError, match="cannot read the label selector"):
        matches("app=(db", LABELS)


def pod(
    name: str, labels: dict[str, str], *, ready: bool = True, ip: str | None = "10.0.0.1"
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "labels": labels,
            "ownerReferences": [{"uid": "sts-uid", "controller": True, "kind": "StatefulSet"}],
            "annotations": {"big": "x" * 1000},
            "managedFields": [{"manager": "kubelet"}],
        },
        "spec": {
            "containers": [
                {"name": "pg", "image": "postgres", "ports": [{"name": "pg", "containerPort": 5432}]}
            ]
        },
        "status": {
            "podIP": ip,
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
        },
    }


def test_a_trimmed_pod_reads_as_the_pod_does_and_keeps_nothing_else() -> None:
    full = pod("db-replica-0", {"app": "db"})
    small = trimmed(full)
    assert objects.pod_info(small, 0) == objects.pod_info(full, 0)
    assert objects.ready_pod_ip(small) == objects.ready_pod_ip(full) == "10.0.0.1"
    assert objects.controller_uid(small) == "sts-uid"
    assert "annotations" not in small["metadata"] and "managedFields" not in small["metadata"]


def test_the_source_selects_from_the_namespace_of_the_index() -> None:
    index = {
        "shop": [trimmed(pod("db-0", {"app": "db"})), trimmed(pod("web-0", {"app": "web"}))],
        "other": [trimmed(pod("db-0", {"app": "db"}))],
    }
    select = source(index)
    assert [p["metadata"]["name"] for p in select("shop", "app=db")] == ["db-0"]
    assert select("empty", "app=db") == []


def test_serving_state_changes_only_with_readiness_ip_or_deletion() -> None:
    base = pod("db-0", {"app": "db"})
    relabelled = pod("db-0", {"app": "db", "new": "label"})
    assert serving_state(base) == serving_state(relabelled)
    assert serving_state(base) != serving_state(pod("db-0", {"app": "db"}, ready=False))
    assert serving_state(base) != serving_state(pod("db-0", {"app": "db"}, ip="10.0.0.9"))
    going = pod("db-0", {"app": "db"})
    going["metadata"]["deletionTimestamp"] = "2026-12-05T00:00:00Z"
    assert serving_state(base) != serving_state(going)
