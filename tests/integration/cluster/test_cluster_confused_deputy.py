"""No confused deputy (issue 13, item 7): a user who may create ReadWriteWorkloads but not read a
Secret cannot have the operator read it for them and send it to a server of theirs, nor log in
to PgBouncer with it, nor write a ConfigMap they may not write (docs/security.md).

The operator runs as its ServiceAccount with manifests/rbac plus the chart's admission RBAC
(`admissionWebhook.enabled`: create subjectaccessreviews), serving its webhook on 127.0.0.1 with
a certificate made here by openssl. This test installs its own ValidatingWebhookConfiguration,
calling https://127.0.0.1:<port>/references, limited by namespaceSelector to the test's
namespace and deleted at the end, so no other test on the same API server meets it.

The users are ServiceAccounts of the test namespace with a Role each and a `kubectl create
token` kubeconfig: `alice` may do anything to ReadWriteWorkloads and nothing to the Secrets and
the ConfigMap at stake; `bob` may also get those Secrets and patch that ConfigMap. Their
Prometheus URLs are two recording HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_helpers import (
    GROUP,
    PLURAL,
    REPO,
    SA_NAME,
    SA_NAMESPACE,
    VERSION,
    Kube,
    OperatorProcess,
    Plane,
    wait_for,
    workload_spec,
)
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from tests.support.ports import free_port
from tests.support.tiers import need

TOKEN = "s3cret-token-of-db-admin"
ADMIN_LOGIN = "pgbouncer:admin-password"
CHART = REPO / "manifests" / "charts" / "rwscaler"
WEBHOOK_PATH = "references"  # rwscaler.handlers.ADMISSION_PATH
RWW_RULE = {
    "apiGroups": [GROUP],
    "resources": [PLURAL],
    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
}


# ---- a Prometheus URL of the user's own: records what it is sent ----------------------------


class Recorder:
    """An HTTP server on 127.0.0.1 answering every request with an empty Prometheus vector."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization header)
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with recorder._lock:
                    recorder.requests.append((self.path, self.headers.get("Authorization")))
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            do_GET = do_POST = _answer

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def seen(self) -> list[tuple[str, str | None]]:
        with self._lock:
            return list(self.requests)

    def authorizations(self) -> set[str | None]:
        return {auth for _, auth in self.seen()}


# ---- the webhook: RBAC from the chart, a certificate, the configuration ---------------------


def _helm() -> Path:
    out = subprocess.run(
        ["bash", "-c", ". hack/cluster/lib.sh && bin_path helm"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def admission_rbac(plane: Plane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The chart's ClusterRole and binding for SubjectAccessReviews (admissionWebhook.enabled)."""
    helm = _helm()
    need(helm.is_file(), f"no helm binary at {helm}: run `make helm` (builds it from Go modules)")
    rendered = subprocess.run(
        [
            str(helm),
            "template",
            SA_NAME,
            str(CHART),
            "--namespace",
            SA_NAMESPACE,
            "--set",
            "admissionWebhook.enabled=true",
            "--show-only",
            "templates/admission-webhook.yaml",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    docs = [
        d for d in yaml.safe_load_all(rendered) if d and d["kind"] in {"ClusterRole", "ClusterRoleBinding"}
    ]
    assert len(docs) == 2, rendered
    path = tmp_path_factory.mktemp("admission-rbac") / "rbac.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    kube = plane.kube
    existed = set(kube.kubectl("get", "--ignore-not-found", "-o", "name", "-f", str(path)).split())
    kube.apply(path)
    yield
    if not existed:
        kube.kubectl("delete", "--ignore-not-found", "-f", str(path))


@dataclass
class Tls:
    cert: Path
    key: Path
    ca_bundle: str  # base64 of the (self-signed) certificate, for clientConfig.caBundle


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return Tls(cert, key, base64.b64encode(cert.read_bytes()).decode())


@dataclass
class User:
    name: str
    username: str
    api: k8s.CustomObjectsApi

    def create(self, ns: str, name: str, spec: dict[str, Any], dry_run: bool = False) -> str | None:
        """None when admitted, else the API server's message."""
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ReadWriteWorkload", "metadata": {"name": name}}
        body["spec"] = spec
        try:
            self.api.create_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, body, dry_run="All" if dry_run else None
            )
        except ApiException as err:
            return _message(err)
        return None

    def patch(self, ns: str, name: str, patch: dict[str, Any]) -> str | None:
        try:
            self.api.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, patch)
        except ApiException as err:
            return _message(err)
        return None


def _message(err: ApiException) -> str:
    try:
        return str(json.loads(err.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"{err.status} {err.reason}: {err.body}"


def make_user(kube: Kube, ns: str, name: str, rules: list[dict[str, Any]], tmp: Path) -> User:
    kube.core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
    rbac = k8s.RbacAuthorizationV1Api(kube.api)
    rbac.create_namespaced_role(ns, {"metadata": {"name": name}, "rules": rules})
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        },
    )
    config = tmp / f"{name}.kubeconfig"
    subprocess.run(
        [str(REPO / "hack/cluster/sa-kubeconfig.sh"), ns, name, str(config), "1h"],
        check=True,
        capture_output=True,
        text=True,
    )
    api = k8s.CustomObjectsApi(k8s_config.new_client_from_config(config_file=str(config)))
    return User(name, f"system:serviceaccount:{ns}:{name}", api)


@dataclass
class Scene:
    ns: str
    kube: Kube
    alice: User
    bob: User
    operator: OperatorProcess
    cleanups: list[Callable[[], None]] = field(default_factory=list)


def _secret(kube: Kube, ns: str, name: str, data: dict[str, str]) -> None:
    kube.core.create_namespaced_secret(ns, {"metadata": {"name": name}, "stringData": data})


def _pgbouncer_spec(admin_secret: str, url: str = "http://127.0.0.1:9") -> dict[str, Any]:
    spec = workload_spec(url)
    pgbouncer = {
        "deployment": "pgbouncer",
        "configMap": "pgbouncer",
        "database": "app",
        "adminSecret": {"name": admin_secret, "key": "admin"},
    }
    spec["pooler"] = {"kind": "PgBouncer", "pgbouncer": pgbouncer}
    return spec


@pytest.fixture
def scene(
    plane: Plane,
    ns: str,
    operator: Callable[..., OperatorProcess],
    admission_rbac: None,
    tls: Tls,
    tmp_path: Path,
) -> Iterator[Scene]:
    kube = plane.kube
    _secret(kube, ns, "db-admin", {"token": TOKEN, "admin": ADMIN_LOGIN})
    _secret(kube, ns, "pgb-admin", {"admin": ADMIN_LOGIN})
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "pgbouncer"}, "data": {}})
    alice = make_user(
        kube,
        ns,
        "alice",
        # Workloads, and the one Secret of the PgBouncer case that is hers to read.
        [
            RWW_RULE,
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["pgb-admin"]},
        ],
        tmp_path,
    )
    bob = make_user(
        kube,
        ns,
        "bob",
        [
            RWW_RULE,
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["get"],
                "resourceNames": ["db-admin", "pgb-admin"],
            },
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "verbs": ["get", "patch"],
                "resourceNames": ["pgbouncer"],
            },
        ],
        tmp_path,
    )
    port = free_port()
    op = operator(
        "--admission-webhook",
        f"127.0.0.1:{port}",
        "--admission-webhook-cert",
        str(tls.cert),
        "--admission-webhook-key",
        str(tls.key),
    )
    admission = k8s.AdmissionregistrationV1Api(kube.api)
    name = f"rwscaler-test-{ns}"
    admission.create_validating_webhook_configuration(
        {
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": "references.rwscaler.io",
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Fail",
                    "timeoutSeconds": 10,
                    "matchPolicy": "Equivalent",
                    # Only this test's namespace: other tests share the API server.
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                    "rules": [
                        {
                            "apiGroups": [GROUP],
                            "apiVersions": [VERSION],
                            "resources": [PLURAL],
                            "operations": ["CREATE", "UPDATE"],
                            "scope": "Namespaced",
                        }
                    ],
                    "clientConfig": {
                        "url": f"https://127.0.0.1:{port}/{WEBHOOK_PATH}",
                        "caBundle": tls.ca_bundle,
                    },
                }
            ],
        }
    )
    try:
        # The API server applies a new webhook configuration within a moment, and the operator
        # serves once started: wait until a dry run (which persists nothing) is refused.
        # alice may read pgb-admin, not patch the ConfigMap
        probe = _pgbouncer_spec("pgb-admin")

        def refused() -> bool:
            assert op.process.running(), f"the operator exited:\n{op.log_tail()}"
            return "denied the request" in (alice.create(ns, "probe", probe, dry_run=True) or "")

        wait_for(
            "the webhook to refuse alice's dry run",
            refused,
            timeout=60,
            last=lambda: alice.create(ns, "probe", probe, dry_run=True),
        )
        yield Scene(ns, kube, alice, bob, op)
    finally:
        admission.delete_validating_webhook_configuration(name)


def _refusal(user: User, ns: str, field_: str, verb: str, kind: str, name: str, purpose: str) -> str:
    return f'{field_}: user "{user.username}" may not {verb} {kind} "{name}" in namespace "{ns}"; {purpose}'


def test_a_user_who_may_not_read_a_secret_cannot_have_it_sent_to_their_prometheus(
    scene: Scene, db: None
) -> None:
    ns, alice, bob = scene.ns, scene.alice, scene.bob
    with Recorder() as alices, Recorder() as bobs:
        steal = workload_spec(alices.url)
        steal["prometheus"]["bearerTokenSecret"] = {"name": "db-admin", "key": "token"}
        expected = _refusal(
            alice,
            ns,
            "spec.prometheus.bearerTokenSecret",
            "get",
            "secret",
            "db-admin",
            f"rwscaler would send its content to spec.prometheus.url ({alices.url})",
        )
        refused = alice.create(ns, "steal", steal)
        assert refused is not None and refused.endswith(expected), refused
        assert scene.kube.workload(ns, "steal") is None

        # Her rights on workloads are enough for one that names no Secret ...
        assert alice.create(ns, "own", workload_spec(alices.url)) is None
        # ... and bob, who may read the Secret, may have it sent to his Prometheus.
        legit = workload_spec(bobs.url)
        legit["prometheus"]["bearerTokenSecret"] = {"name": "db-admin", "key": "token"}
        assert bob.create(ns, "legit", legit) is None

        # Updates: adding the reference to her own workload, or sending bob's token to her
        # server, is refused; an annotation on bob's workload is not a reference change.
        assert alice.patch(ns, "own", {"spec": {"prometheus": steal["prometheus"]}}) == refused
        redirected = alice.patch(ns, "legit", {"spec": {"prometheus": {"url": alices.url}}})
        assert redirected is not None and redirected.endswith(expected), redirected
        assert alice.patch(ns, "legit", {"metadata": {"annotations": {"team": "alice"}}}) is None

        # The operator ticks every workload it was given: bob's Prometheus gets the token, hers
        # gets the queries of her own workload, again after every refused attempt ...
        wait_for("bob's Prometheus to be sent the token", lambda: f"Bearer {TOKEN}" in bobs.authorizations())
        asked = len(alices.seen())
        wait_for("two more ticks of alice's workload", lambda: len(alices.seen()) >= asked + 2)
        # ... and never a token.
        assert alices.authorizations() == {None}, alices.authorizations()
    log = scene.operator.log_text()
    assert TOKEN not in log


def test_pgbouncer_admin_secret_and_configmap_need_the_users_own_rights(scene: Scene) -> None:
    ns, alice, bob = scene.ns, scene.alice, scene.bob
    spec = _pgbouncer_spec("db-admin")
    admin_refusal = _refusal(
        alice,
        ns,
        "spec.pooler.pgbouncer.adminSecret",
        "get",
        "secret",
        "db-admin",
        "rwscaler would log in with it to the PgBouncer admin console of the pods of "
        "spec.pooler.pgbouncer.deployment (pgbouncer)",
    )
    configmap_refusal = _refusal(
        alice,
        ns,
        "spec.pooler.pgbouncer.configMap",
        "patch",
        "configmap",
        "pgbouncer",
        'rwscaler would write its key "databases.ini" (spec.pooler.pgbouncer.configKey)',
    )
    refused = alice.create(ns, "pool", spec)
    assert refused is not None and refused.endswith(f"{admin_refusal}; {configmap_refusal}"), refused

    # A Secret she may read, a ConfigMap she may not write: only the ConfigMap is named.
    spec["pooler"]["pgbouncer"]["adminSecret"] = {"name": "pgb-admin", "key": "admin"}
    refused = alice.create(ns, "pool", spec)
    assert refused is not None and refused.endswith(f"denied the request: {configmap_refusal}"), refused

    # bob holds both rights: the same workload is admitted.
    spec["pooler"]["pgbouncer"]["adminSecret"] = {"name": "db-admin", "key": "admin"}
    assert bob.create(ns, "pool", spec) is None
    assert scene.kube.workload(ns, "pool") is not None

    # failurePolicy Fail: with the operator down nothing is admitted unchecked, not even bob's.
    scene.operator.stop()
    spec["pooler"]["pgbouncer"]["configMap"] = "pgbouncer"
    down = bob.create(ns, "pool-2", spec)
    assert down is not None and "failed calling webhook" in down, down


def test_the_webhook_refuses_promql_that_does_not_parse(scene: Scene) -> None:
    """CEL cannot parse PromQL; the webhook runs the models (docs/operator.md "Admission")."""
    spec = workload_spec("http://127.0.0.1:9")
    spec["metrics"]["queries"]["readQPS"] = "sum(rate(x[1m])"
    refused = scene.bob.create(scene.ns, "broken", spec)
    assert (
        refused is not None and "metrics.queries.readQPS" in refused and "is not valid PromQL" in refused
    ), refused
    assert scene.kube.workload(scene.ns, "broken") is None
