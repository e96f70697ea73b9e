"""kube/objects.py and pooler/endpointslice/objects.py: the objects the operator sends, and how it
reads what it gets back (pure)."""

from __future__ import annotations

from typing import Any

from rwscaler.boundary import Endpoint, OwnerRef, Port
from rwscaler.core.vocabulary import Event, EventReason, EventType
from rwscaler.kube.objects import (
    controller_uid,
    event,
    kept_copy,
    label_selector,
    merge_patch,
    ordinal_suffix,
    pod_info,
)
from rwscaler.pooler.endpointslice.objects import (
    endpoint_slice,
    read_service,
    service_ports_differ,
    slice_differs,
)

OWNER = OwnerRef(namespace="shop", name="orders", uid="uid-1")
PORTS = (Port("postgres", 5432),)
EPS = (Endpoint("db-replica-0", "p0", "10.0.0.1"), Endpoint("db-replica-1", "p1", "10.0.0.2"))


def test_read_service_is_selector_less_and_owned() -> None:
    svc = read_service(OWNER, "orders-read", PORTS)
    assert "selector" not in svc["spec"]
    ref = svc["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
        "ReadWriteWorkload",
        "uid-1",
        True,
        False,
    )
    assert svc["spec"]["ports"] == [{"name": "postgres", "port": 5432, "targetPort": 5432, "protocol": "TCP"}]
    assert not service_ports_differ(svc, PORTS)
    assert service_ports_differ(svc, (Port("postgres", 5433),))


def test_endpoint_slice_lists_exactly_the_endpoints() -> None:
    es = endpoint_slice(OWNER, "orders-read", PORTS, EPS)
    labels = es["metadata"]["labels"]
    assert labels["endpointslice.kubernetes.io/managed-by"] == "rwscaler.io"
    assert labels["kubernetes.io/service-name"] == "orders-read"
    assert [e["addresses"] for e in es["endpoints"]] == [["10.0.0.1"], ["10.0.0.2"]]
    assert es["endpoints"][0]["targetRef"] == {
        "kind": "Pod",
        "namespace": "shop",
        "name": "db-replica-0",
        "uid": "p0",
    }
    assert es["ports"] == [{"name": "postgres", "port": 5432, "protocol": "TCP"}]


def test_slice_differs_ignores_order_and_server_added_fields() -> None:
    desired = endpoint_slice(OWNER, "orders-read", PORTS, EPS)
    returned = endpoint_slice(OWNER, "orders-read", PORTS, tuple(reversed(EPS)))
    returned["metadata"]["resourceVersion"] = "42"
    returned["ports"] = [{"protocol": "TCP", "port": 5432, "name": "postgres"}]
    assert not slice_differs(returned, desired)
    assert slice_differs(endpoint_slice(OWNER, "orders-read", PORTS, EPS[:1]), desired)
    assert slice_differs(
        endpoint_slice(OwnerRef("shop", "orders", "other"), "orders-read", PORTS, EPS), desired
    )


def test_default_port_when_the_statefulset_names_none() -> None:
    es = endpoint_slice(OWNER, "r", (), EPS)
    assert es["ports"] == [{"name": "db", "port": 5432, "protocol": "TCP"}]


def test_merge_patch_nulls_what_went_and_keeps_what_stayed() -> None:
    old = {"a": 1, "b": {"c": 1, "d": 2}, "e": [1], "gone": 1}
    new = {"a": 1, "b": {"c": 1, "d": 3}, "e": [1, 2]}
    assert merge_patch(old, new) == {"gone": None, "b": {"d": 3}, "e": [1, 2]}
    assert merge_patch(new, new) == {}


def test_label_selector() -> None:
    sel = {
        "matchLabels": {"app": "db", "role": "replica"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "x", "operator": "Exists"},
            {"key": "y", "operator": "DoesNotExist"},
        ],
    }
    assert label_selector(sel) == "app=db,role=replica,tier in (a,b),x,!y"


def test_a_pod_is_read_with_its_labels_ports_and_readiness() -> None:
    pod = {
        "metadata": {"name": "db-replica-1", "uid": "pod-uid", "labels": {"spilo-role": "replica"}},
        "spec": {"containers": [{"name": "pg", "ports": [{"name": "postgres", "containerPort": 5432}]}]},
        "status": {"podIP": "10.0.0.7", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    info = pod_info(pod, 1)
    assert (info.rank, info.ready, info.ip) == (1, True, "10.0.0.7")
    assert info.labels == {"spilo-role": "replica"} and info.ports == (Port("postgres", 5432, "TCP"),)
    terminating = {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "2024-01-01T00:00:00Z"}}
    assert pod_info(terminating).ready is False


def test_ordinal_suffix_and_controller() -> None:
    assert ordinal_suffix("db-replica-12", "db-replica") == 12
    assert ordinal_suffix("db-replica-12", "db") is None  # another set's pod
    assert ordinal_suffix("db-replica-x", "db-replica") is None
    owned = {"metadata": {"ownerReferences": [{"uid": "a"}, {"uid": "b", "controller": True}]}}
    assert controller_uid(owned) == "b" and controller_uid({"metadata": {}}) is None


def test_event_is_about_the_workload_and_bounded() -> None:
    ev = event(OWNER, Event(EventType.NORMAL, EventReason.SCALED_UP, "x" * 5000), 0.0, "host")
    assert ev["involvedObject"]["uid"] == "uid-1" and ev["reason"] == "ScaledUp"
    assert len(ev["message"]) == 1024


def test_kept_copy_drops_managed_fields_and_shares_nothing() -> None:
    body: dict[str, Any] = {
        "apiVersion": "rwscaler.io/v1alpha1",
        "metadata": {
            "name": "orders",
            "annotations": {"a": "b"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"primary": {"name": "orders-db"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    kept = kept_copy(body)
    assert kept == {**body, "metadata": {"name": "orders", "annotations": {"a": "b"}}}
    kept["metadata"]["annotations"]["a"] = "changed"
    kept["status"]["conditions"][0]["status"] = "False"
    assert body["metadata"]["annotations"] == {"a": "b"}
    assert body["status"]["conditions"][0]["status"] == "True"
    assert "managedFields" in body["metadata"]  # the watch's own object is left as it was
    assert kept_copy({"kind": "Pod"}) == {"kind": "Pod"}
