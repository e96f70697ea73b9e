"""The chart's references check (`admissionWebhook`, docs/security.md): off by default (nothing of
it rendered, so manifests/ is unchanged); on, a webhook Secret whose certificate the
ValidatingWebhookConfiguration's caBundle verifies for the Service's name, the Service, the
webhook itself (failurePolicy Fail, sideEffects None, CREATE and UPDATE of ReadWriteWorkloads),
exactly `create subjectaccessreviews` for the operator, and the pod serving on its own IP.

The webhook's behaviour is tested on the local control plane:
tests/integration/cluster/test_cluster_confused_deputy.py.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

from chart_helpers import NAMESPACE, Helm, Rendering, one

ON = ("admissionWebhook.enabled=true",)
ADMISSION_KINDS = {"Secret", "Service", "ValidatingWebhookConfiguration"}


def _deployment_container(rendering: Rendering) -> dict[str, Any]:
    container: dict[str, Any] = one(rendering, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


def test_off_by_default(helm: Helm) -> None:
    rendering = helm.template()
    assert not {o["kind"] for o in rendering.objects} & ADMISSION_KINDS
    assert not [o for o in rendering.kinds("ClusterRole") if o["metadata"]["name"].endswith("-admission")]
    assert "--admission-webhook" not in _deployment_container(rendering)["args"]


def test_the_webhook_refuses_unchecked_requests_and_has_no_side_effects(helm: Helm) -> None:
    config = one(helm.template(values=ON), "ValidatingWebhookConfiguration")
    assert config["metadata"]["name"] == "rwscaler"
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "None"
    assert hook["rules"] == [
        {
            "apiGroups": ["rwscaler.io"],
            "apiVersions": ["v1alpha1"],
            "resources": ["readwriteworkloads"],
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
    ]
    assert "namespaceSelector" not in hook  # every namespace
    assert hook["clientConfig"]["service"] == {
        "name": "rwscaler-webhook",
        "namespace": NAMESPACE,
        "path": "/references",
        "port": 443,
    }
    ignore = one(
        helm.template(values=(*ON, "admissionWebhook.failurePolicy=Ignore")), "ValidatingWebhookConfiguration"
    )
    assert ignore["webhooks"][0]["failurePolicy"] == "Ignore"


def test_the_ca_bundle_verifies_the_serving_certificate_for_the_service(helm: Helm, tmp_path: Path) -> None:
    rendering = helm.template(values=ON)
    secret = one(rendering, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    ca_bundle = one(rendering, "ValidatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"]
    assert ca_bundle == secret["data"]["ca.crt"]
    ca, cert = tmp_path / "ca.crt", tmp_path / "tls.crt"
    ca.write_bytes(base64.b64decode(ca_bundle))
    cert.write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
    subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)], check=True, capture_output=True)
    sans = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"DNS:rwscaler-webhook.{NAMESPACE}.svc" in sans


def test_the_operator_may_create_subject_access_reviews_and_nothing_more(helm: Helm) -> None:
    rendering = helm.template(values=ON)
    (role,) = [o for o in rendering.kinds("ClusterRole") if o["metadata"]["name"] == "rwscaler-admission"]
    assert role["rules"] == [
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}
    ]
    (binding,) = [
        o for o in rendering.kinds("ClusterRoleBinding") if o["metadata"]["name"] == "rwscaler-admission"
    ]
    assert binding["roleRef"]["name"] == "rwscaler-admission"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rwscaler", "namespace": NAMESPACE}]


def test_the_pod_serves_the_webhook_on_its_own_ip_with_the_mounted_certificate(helm: Helm) -> None:
    rendering = helm.template(values=ON)
    container = _deployment_container(rendering)
    args = container["args"]
    assert args[args.index("--admission-webhook") + 1] == "[$(POD_IP)]:9443"
    assert args[args.index("--admission-webhook-cert") + 1] == "/etc/rwscaler/webhook/tls.crt"
    assert args[args.index("--admission-webhook-key") + 1] == "/etc/rwscaler/webhook/tls.key"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in container["ports"]
    volumes = one(rendering, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "webhook-tls", "secret": {"secretName": "rwscaler-webhook-tls"}} in volumes
    service = one(rendering, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "webhook"
