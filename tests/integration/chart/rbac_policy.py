"""What the operator may do, as docs/operator.md ("RBAC") and manifests/charts/rwscaler document
it: the least-privilege list the chart's roles are checked against. A rule in a role that is not
here fails the tests; so does a documented permission that no rule grants.
"""

from __future__ import annotations

from typing import Any

# (apiGroup, resource) -> verbs, for the workloads' namespaces (the ClusterRole, or a Role in each
# of watchNamespaces). From docs/operator.md's table and the comments of the hand-written
# ClusterRole this chart replaced.
WORKLOAD_PERMISSIONS: dict[tuple[str, str], frozenset[str]] = {
    # watch the workloads; kopf's progress annotations (patch)
    ("rwscaler.io", "readwriteworkloads"): frozenset({"get", "list", "watch", "patch"}),
    # report
    ("rwscaler.io", "readwriteworkloads/status"): frozenset({"get", "patch"}),
    # the scale targets, only through the scale subresource (count, selector; scale): StatefulSets
    # and CloudNativePG Clusters (docs/topologies.md)
    ("apps", "statefulsets/scale"): frozenset({"get", "patch"}),
    # their count and selector: listed once, then watched (never written but through scale)
    ("apps", "statefulsets"): frozenset({"list", "watch"}),
    ("postgresql.cnpg.io", "clusters/scale"): frozenset({"get", "patch"}),
    # readiness, role labels, IPs: listed once, then watched
    ("", "pods"): frozenset({"list", "watch"}),
    # the Prometheus token/CA Secrets named in a spec, by name (never listed)
    ("", "secrets"): frozenset({"get"}),
    # the EndpointSlice pooler's read Service and its EndpointSlice
    # (listed once, then watched, instead of a GET per tick)
    ("", "services"): frozenset({"get", "list", "watch", "create", "patch"}),
    ("discovery.k8s.io", "endpointslices"): frozenset({"get", "list", "watch", "create", "patch"}),
    # Events about the workloads
    ("", "events"): frozenset({"create", "patch"}),
    # the PgBouncer pooler: its Deployment's pods, and the one ConfigMap key rwscaler owns
    ("apps", "deployments"): frozenset({"get"}),
    ("", "configmaps"): frozenset({"get", "patch"}),
}

# Leader election: the Lease in the release namespace (issue 9). Created once, then read and
# renewed by name; never listed or watched.
LEASE_PERMISSIONS: dict[tuple[str, str], frozenset[str]] = {
    ("coordination.k8s.io", "leases"): frozenset({"get", "create", "update"}),
}

# Sharding (sharding.enabled, docs/operator.md "Sharding"): a Lease per replica, named after its
# identity (so not limited by name), the group listed, the Leases of silent replicas deleted.
SHARD_LEASE_PERMISSIONS: dict[tuple[str, str], frozenset[str]] = {
    ("coordination.k8s.io", "leases"): frozenset({"get", "list", "create", "update", "delete"}),
}


def granted(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs that a role's rules grant, refusing wildcards."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        groups, resources, verbs = rule.get("apiGroups", []), rule.get("resources", []), rule.get("verbs", [])
        assert "nonResourceURLs" not in rule, f"a namespaced operator needs no nonResourceURLs: {rule}"
        for word in (*groups, *resources, *verbs):
            assert "*" not in word, f"wildcard in {rule}"
        for group in groups:
            for resource in resources:
                out.setdefault((group, resource), set()).update(verbs)
    return out


def assert_exactly(rules: list[dict[str, Any]], documented: dict[tuple[str, str], frozenset[str]]) -> None:
    """Every (group, resource, verb) granted is documented, and every documented one is granted."""
    got = granted(rules)
    extra = {
        (g, r, v)
        for (g, r), verbs in got.items()
        for v in verbs
        if v not in documented.get((g, r), frozenset())
    }
    missing = {
        (g, r, v) for (g, r), verbs in documented.items() for v in verbs if v not in got.get((g, r), set())
    }
    assert not extra, f"granted but not documented (least privilege): {sorted(extra)}"
    assert not missing, f"documented but not granted: {sorted(missing)}"
