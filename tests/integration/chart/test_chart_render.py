"""`helm lint` and `helm template` of the chart: the schema refuses bad values, the renderings
match the committed snapshots, and what issue 9 asks of them holds (checked on the objects, not
on the template text).

Snapshots: tests/integration/chart/snapshots/<name>.yaml; refresh with
`UPDATE_SNAPSHOTS=1 pytest tests/integration/chart/test_chart_render.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import CHART, NAMESPACE, Helm, Rendering, one
from rbac_policy import LEASE_PERMISSIONS, SHARD_LEASE_PERMISSIONS, WORKLOAD_PERMISSIONS, assert_exactly

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
NAMESPACED = ("watchNamespaces={team-a,team-b}",)
MONITORING = "monitoring.coreos.com/v1"
MONITOR_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
ALL_MONITORS_ON = (
    "metrics.serviceMonitor.enabled=true",
    "metrics.podMonitor.enabled=true",
    "prometheusRule.enabled=true",
)


def _container(rendering: Rendering) -> dict[str, Any]:
    containers = one(rendering, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _args(rendering: Rendering) -> list[str]:
    return [str(a) for a in _container(rendering)["args"]]


def _flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


# ---- lint and schema ----------------------------------------------------------------------


@pytest.mark.parametrize("values", [(), NAMESPACED], ids=["default", "namespaced"])
def test_helm_lint_passes(helm: Helm, values: tuple[str, ...]) -> None:
    args = ["lint", "--strict", str(CHART)]
    for value in values:
        args += ["--set", value]
    done = helm.run(*args)
    assert "0 chart(s) failed" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("replicas=two", "replicas"),
        ("replicaCount=2", "replicaCount"),
        ("image.repo=x", "repo"),
        ("logLevel=verbose", "logLevel"),
    ],
)
@pytest.mark.parametrize("command", ["lint", "template"])
def test_wrong_types_and_unknown_keys_fail_the_schema(
    helm: Helm, command: str, value: str, error: str
) -> None:
    args = [command, "rwscaler", str(CHART)] if command == "template" else [command, str(CHART)]
    done = helm.run(*args, "--set", value, check=False)
    output = done.stderr + done.stdout
    assert done.returncode != 0, output
    assert "values don't meet the specifications of the schema" in output, output
    assert error in output, output


# ---- snapshots -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "values"), [("default", ()), ("namespaced", NAMESPACED)])
def test_rendering_matches_the_snapshot(helm: Helm, name: str, values: tuple[str, ...]) -> None:
    text = helm.template(values=values).text
    path = SNAPSHOTS / f"{name}.yaml"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert path.is_file(), f"no snapshot {path}: run with UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), f"{path} differs from the rendering; UPDATE_SNAPSHOTS=1 refreshes it"


# ---- what the issue asks ---------------------------------------------------------------------


def test_default_values_are_cluster_wide(helm: Helm) -> None:
    r = helm.template()
    role, binding = one(r, "ClusterRole"), one(r, "ClusterRoleBinding")
    assert role["metadata"]["name"] == binding["metadata"]["name"] == "rwscaler"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "rwscaler",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rwscaler", "namespace": NAMESPACE}]
    args = _args(r)
    assert "-n" not in args and "--namespace" not in args
    # the only namespaced role is the leader-election one, in the release namespace
    assert [x["metadata"]["namespace"] for x in r.kinds("Role")] == [NAMESPACE]


def test_namespaced_values_render_roles_per_namespace_and_no_cluster_role(helm: Helm) -> None:
    r = helm.template(values=NAMESPACED)
    assert not r.kinds("ClusterRole")
    assert not r.kinds("ClusterRoleBinding")
    lease_role = "rwscaler-leader-election"
    roles = {x["metadata"]["namespace"]: x for x in r.kinds("Role") if x["metadata"]["name"] != lease_role}
    bindings = {
        x["metadata"]["namespace"]: x for x in r.kinds("RoleBinding") if x["metadata"]["name"] != lease_role
    }
    assert sorted(roles) == sorted(bindings) == ["team-a", "team-b"]
    for ns in ("team-a", "team-b"):
        assert_exactly(roles[ns]["rules"], WORKLOAD_PERMISSIONS)
        assert bindings[ns]["roleRef"]["kind"] == "Role"
        assert bindings[ns]["roleRef"]["name"] == roles[ns]["metadata"]["name"]
        assert bindings[ns]["subjects"] == [
            {"kind": "ServiceAccount", "name": "rwscaler", "namespace": NAMESPACE}
        ]
    args = _args(r)
    assert args[0] == "run"
    pairs = [args[i + 1] for i, a in enumerate(args) if a == "-n"]
    assert pairs == ["team-a", "team-b"]
    assert "-n team-a -n team-b" in " ".join(args)


def test_the_command_line(helm: Helm) -> None:
    args = _args(helm.template(release="ops"))
    assert args[0] == "run"
    assert _flag(args, "--liveness") == "http://0.0.0.0:8080/healthz"
    assert _flag(args, "--log-level") == "info"
    assert "--leader-elect" in args
    assert _flag(args, "--lease-name") == "ops-rwscaler"
    assert _flag(args, "--lease-namespace") == NAMESPACE
    assert _flag(args, "--metrics-address") == "0.0.0.0:8081"  # docs/chart.md: metrics.enabled
    # unset values render no flag
    assert "--prometheus-url" not in args
    assert "--metrics-address" not in _args(helm.template(values=("metrics.enabled=false",)))

    args = _args(
        helm.template(
            values=(
                "logLevel=debug",
                "prometheus.url=http://prom.monitoring:9090",
            )
        )
    )
    assert _flag(args, "--log-level") == "debug"
    assert _flag(args, "--prometheus-url") == "http://prom.monitoring:9090"


def test_the_pod_knows_its_name_and_namespace(helm: Helm) -> None:
    env = {e["name"]: e for e in _container(helm.template())["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_the_lease_role_is_in_the_release_namespace(helm: Helm) -> None:
    r = helm.template(release="ops")
    role = next(x for x in r.kinds("Role") if x["metadata"]["name"] == "ops-rwscaler-leader-election")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert_exactly(role["rules"], LEASE_PERMISSIONS)
    # get/update only on the Lease the operator is told to use
    lease_name = _flag(_args(r), "--lease-name")
    assert all(rule.get("resourceNames", [lease_name]) == [lease_name] for rule in role["rules"])
    binding = next(x for x in r.kinds("RoleBinding") if x["metadata"]["name"] == role["metadata"]["name"])
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ops-rwscaler", "namespace": NAMESPACE}]


def test_sharding_replaces_leader_election(helm: Helm) -> None:
    r = helm.template(release="ops", values=("sharding.enabled=true", "replicas=3"))
    args = _args(r)
    assert "--shards" in args
    assert "--leader-elect" not in args
    assert "--lease-name" not in args
    assert _flag(args, "--shard-group") == "ops-rwscaler"
    assert _flag(args, "--lease-namespace") == NAMESPACE
    role = next(x for x in r.kinds("Role") if x["metadata"]["name"] == "ops-rwscaler-leader-election")
    assert_exactly(role["rules"], SHARD_LEASE_PERMISSIONS)
    # The group name is a label value and the prefix of `<group>-<12 hex digits>` Lease names.
    long = helm.template(release="x" * 53, values=("sharding.enabled=true",))
    group = _flag(_args(long), "--shard-group")
    assert len(group) <= 50 and not group.endswith("-")


def test_the_cluster_role_is_least_privilege(helm: Helm) -> None:
    assert_exactly(one(helm.template(), "ClusterRole")["rules"], WORKLOAD_PERMISSIONS)


def test_cluster_scoped_objects_are_named_after_the_release(helm: Helm) -> None:
    r = helm.template(release="other")
    assert one(r, "ClusterRole")["metadata"]["name"] == "other-rwscaler"
    assert one(r, "ClusterRoleBinding")["metadata"]["name"] == "other-rwscaler"
    assert one(r, "ClusterRoleBinding")["roleRef"]["name"] == "other-rwscaler"


@pytest.mark.parametrize(("replicas", "pdb"), [(0, False), (1, False), (2, True), (3, True)])
def test_a_disruption_budget_only_with_several_replicas(helm: Helm, replicas: int, pdb: bool) -> None:
    r = helm.template(values=(f"replicas={replicas}",))
    deployment = one(r, "Deployment")
    assert deployment["spec"]["replicas"] == replicas
    budgets = r.kinds("PodDisruptionBudget")
    if pdb:
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
        assert len(budgets) == 1
        assert budgets[0]["spec"]["maxUnavailable"] == 1
        assert budgets[0]["spec"]["selector"] == deployment["spec"]["selector"]
    else:
        assert budgets == []


def test_the_security_context_is_restricted(helm: Helm) -> None:
    r = helm.template()
    pod = one(r, "Deployment")["spec"]["template"]["spec"]
    container = _container(r)
    for context in (pod["securityContext"], container["securityContext"]):
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == 65532
        assert context["runAsGroup"] == 65532
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc.get("privileged", False) is False
    # a writable /tmp on the read-only root
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert volume == {"name": tmp["name"], "emptyDir": {}}


def test_the_deployment_defaults(helm: Helm) -> None:
    r = helm.template()
    deployment = one(r, "Deployment")
    container = _container(r)
    assert deployment["spec"]["replicas"] == 1
    assert container["image"] == "rwscaler:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }
    probe = container["livenessProbe"]["httpGet"]
    port = next(
        p for p in container["ports"] if p["name"] == probe["port"] or p["containerPort"] == probe["port"]
    )
    assert probe["path"] == "/healthz"
    assert port["containerPort"] == 8080
    sa = one(r, "ServiceAccount")
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"] == "rwscaler"
    )
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "rwscaler"
    assert labels["app.kubernetes.io/instance"] == "rwscaler"
    assert labels["app.kubernetes.io/version"] == "0.1.0"
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert labels["helm.sh/chart"] == "rwscaler-0.1.0"
    for obj in r.objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "rwscaler", obj["kind"]


def test_values_reach_the_pod(helm: Helm) -> None:
    r = helm.template(
        values=(
            "image.repository=registry.example/rwscaler",
            "image.tag=dev",
            "image.pullPolicy=Always",
            "imagePullSecrets[0].name=regcred",
            "nodeSelector.pool=ops",
            "podAnnotations.team=db",
            "tolerations[0].key=dedicated",
            "tolerations[0].operator=Exists",
        )
    )
    pod = one(r, "Deployment")["spec"]["template"]
    container = _container(r)
    assert container["image"] == "registry.example/rwscaler:dev"
    assert container["imagePullPolicy"] == "Always"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["spec"]["nodeSelector"] == {"pool": "ops"}
    assert pod["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert pod["metadata"]["annotations"] == {"team": "db"}


# ---- monitoring (Prometheus Operator API) ---------------------------------------------------


def _monitoring_kinds(r: Rendering) -> set[str]:
    return {o["kind"] for o in r.objects if o["apiVersion"].startswith("monitoring.coreos.com/")}


def test_no_monitors_by_default_even_with_the_api(helm: Helm) -> None:
    r = helm.template(api_versions=(MONITORING,))
    assert _monitoring_kinds(r) == set()
    assert not r.kinds("Service")
    assert [p["name"] for p in _container(r)["ports"]] == ["health", "metrics"]


def test_monitors_asked_for_without_the_api_are_not_rendered(helm: Helm) -> None:
    r = helm.template(values=ALL_MONITORS_ON)
    assert _monitoring_kinds(r) == set()
    assert not r.kinds("Service")


@pytest.mark.parametrize(
    "api_versions",
    [(MONITORING,), tuple(f"{MONITORING}/{kind}" for kind in MONITOR_KINDS)],
    ids=["group-version", "per-kind"],
)
def test_monitors_asked_for_with_the_api_are_rendered(helm: Helm, api_versions: tuple[str, ...]) -> None:
    r = helm.template(values=ALL_MONITORS_ON, api_versions=api_versions)
    assert _monitoring_kinds(r) == set(MONITOR_KINDS)
    container = _container(r)
    metrics_port = next(p for p in container["ports"] if p["name"] == "metrics")
    assert metrics_port["containerPort"] == 8081
    service = one(r, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"] == one(r, "Deployment")["spec"]["selector"]["matchLabels"]
    assert one(r, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics"
    assert one(r, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_without_metrics_no_port_and_no_monitors(helm: Helm) -> None:
    r = helm.template(values=(*ALL_MONITORS_ON, "metrics.enabled=false"), api_versions=(MONITORING,))
    assert _monitoring_kinds(r) == {"PrometheusRule"}  # its alerts read kube-state-metrics
    assert not r.kinds("Service")
    assert [p["name"] for p in _container(r)["ports"]] == ["health"]


def test_each_monitor_needs_its_own_kind(helm: Helm) -> None:
    r = helm.template(values=ALL_MONITORS_ON, api_versions=(f"{MONITORING}/PodMonitor",))
    assert _monitoring_kinds(r) == {"PodMonitor"}
    assert not r.kinds("Service")  # the Service exists only for the ServiceMonitor


def test_the_prometheus_rule(helm: Helm) -> None:
    r = helm.template(
        values=(
            "prometheusRule.enabled=true",
            "prometheusRule.rules[0].alert=MyAlert",
            "prometheusRule.rules[0].expr=vector(1)",
        ),
        api_versions=(MONITORING,),
    )
    groups = one(r, "PrometheusRule")["spec"]["groups"]
    assert len(groups) == 1
    rules = groups[0]["rules"]
    unavailable = rules[0]
    assert "kube_deployment_status_replicas_available" in unavailable["expr"]
    assert 'deployment="rwscaler"' in unavailable["expr"]
    assert f'namespace="{NAMESPACE}"' in unavailable["expr"]
    assert {"alert": "MyAlert", "expr": "vector(1)"} in rules
    # The workloads' alerts are those of the plain rules file that promtool tests (tests/alerts/).
    plain = yaml.safe_load((CHART.parents[1] / "prometheus" / "rwscaler-alerts.yaml").read_text())
    workload_alerts = plain["groups"][0]["rules"]
    assert [r["alert"] for r in workload_alerts] == [
        "RwscalerMetricsUnavailable",
        "RwscalerStuckAtMaxReplicas",
        "RwscalerWriteBottleneck",
        "RwscalerReadsOnPrimary",
        "RwscalerNotReconciling",
    ]
    assert rules[1:-1] == workload_alerts


def test_extra_scale_targets_add_get_and_patch_on_their_scale_subresource_only(helm: Helm) -> None:
    rendering = helm.template(
        values=(
            "rbac.extraScaleTargets[0].apiGroup=example.com",
            "rbac.extraScaleTargets[0].resource=databases",
        )
    )
    documented = {**WORKLOAD_PERMISSIONS, ("example.com", "databases/scale"): frozenset({"get", "patch"})}
    assert_exactly(one(rendering, "ClusterRole")["rules"], documented)


def test_the_dashboard_config_map_only_when_asked(helm: Helm) -> None:
    assert not helm.template().kinds("ConfigMap")
    r = helm.template(values=("grafanaDashboard.enabled=true", "grafanaDashboard.namespace=monitoring"))
    cm = one(r, "ConfigMap")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART.parents[1] / "grafana" / "rwscaler-dashboard.json").read_text())
    assert json.loads(cm["data"]["rwscaler-workload.json"]) == shipped
