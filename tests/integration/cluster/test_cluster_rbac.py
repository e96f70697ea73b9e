"""The operator runs as its ServiceAccount, bound only to manifests/rbac, and that is enough.

"Enough" is shown by every other test of this folder: each starts the operator with this
ServiceAccount's kubeconfig (a `kubectl create token` bound token). This test shows who it is
and that the role is least privilege: what the operator needs is allowed, the rest is not.
"""

from __future__ import annotations

import pytest
from cluster_helpers import SA_NAME, SA_NAMESPACE, Kube, Plane
from kubernetes import client as k8s
from kubernetes import config as k8s_config

ALLOWED = [
    ("rwscaler.io", "readwriteworkloads", "", "watch"),
    ("rwscaler.io", "readwriteworkloads", "status", "patch"),
    ("apps", "statefulsets", "scale", "get"),  # a scale target's count and selector
    ("apps", "statefulsets", "scale", "patch"),
    ("postgresql.cnpg.io", "clusters", "scale", "get"),  # CloudNativePG Clusters (docs/topologies.md)
    ("postgresql.cnpg.io", "clusters", "scale", "patch"),
    ("", "pods", "", "list"),
    ("", "pods", "", "watch"),  # listed once, then watched (kube/pod_cache.py)
    ("", "secrets", "", "get"),
    ("", "services", "", "create"),
    ("", "services", "", "watch"),  # read Services and rwscaler's slices: listed, then watched
    ("discovery.k8s.io", "endpointslices", "", "patch"),
    ("discovery.k8s.io", "endpointslices", "", "watch"),
    ("apps", "statefulsets", "", "watch"),  # their count and selector, followed (never written)
    ("", "events", "", "create"),
    ("", "events", "", "patch"),  # a repeated Event is counted, not copied
    ("apps", "deployments", "", "get"),
    ("", "configmaps", "", "patch"),
]
DENIED = [
    ("apps", "statefulsets", "", "patch"),  # replicas only through the scale subresource
    ("postgresql.cnpg.io", "clusters", "", "patch"),  # a Cluster's spec only through scale
    ("apps", "statefulsets", "", "delete"),
    ("apps", "statefulsets", "", "create"),
    ("", "pods", "", "delete"),
    ("", "pods", "", "create"),
    ("", "secrets", "", "list"),  # Secrets are read by name, never listed
    ("", "services", "", "delete"),
    ("discovery.k8s.io", "endpointslices", "", "delete"),
    ("rwscaler.io", "readwriteworkloads", "", "delete"),
    ("rwscaler.io", "readwriteworkloads", "", "create"),
    ("", "configmaps", "", "create"),
    ("", "configmaps", "", "delete"),
    ("apps", "deployments", "", "patch"),
    ("rbac.authorization.k8s.io", "clusterroles", "", "create"),
]


@pytest.fixture(scope="module")
def sa_api(plane: Plane) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(config_file=str(plane.sa_kubeconfig))


def _can(api: k8s.ApiClient, ns: str, group: str, resource: str, sub: str, verb: str) -> bool:
    review = k8s.V1SelfSubjectAccessReview(
        spec=k8s.V1SelfSubjectAccessReviewSpec(
            resource_attributes=k8s.V1ResourceAttributes(
                namespace=ns, group=group, resource=resource, subresource=sub or None, verb=verb
            )
        )
    )
    return bool(k8s.AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed)


def test_the_operator_identity_is_the_service_account(plane: Plane, kube: Kube) -> None:
    whoami = kube.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=plane.sa_kubeconfig
    )
    assert whoami == f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"


def test_the_role_allows_what_the_operator_does_and_nothing_else(sa_api: k8s.ApiClient, ns: str) -> None:
    refused = [a for a in ALLOWED if not _can(sa_api, ns, *a)]
    granted = [d for d in DENIED if _can(sa_api, ns, *d)]
    assert not refused, f"needed but not granted: {refused}"
    assert not granted, f"granted but not needed: {granted}"
