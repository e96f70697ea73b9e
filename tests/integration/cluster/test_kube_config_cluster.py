"""rwscaler.kube.config against the local control plane's real kube-apiserver.

Every way the operator authenticates, end to end: the admin kubeconfig (client certificate and CA
as base64 data), the ServiceAccount's kubeconfig (a bound token), an exec credential plugin that
hands out that token, and the in-cluster loader reading a service-account directory laid out as
the kubelet lays it out (token, ca.crt, namespace) with KUBERNETES_SERVICE_HOST/PORT pointing at
the plane. Each one GETs /version, lists ReadWriteWorkloads and asks the API server who it is.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from cluster_helpers import GROUP, PLURAL, SA_NAME, SA_NAMESPACE, VERSION, Plane
from tests.support.cluster import kubeconfig_path

from rwscaler.kube.client import KubeApiError, KubeClient
from rwscaler.kube.config import KubeConfig, KubeConfigError, load_config, load_incluster

SA_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
WHOAMI = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


async def _probe(client: KubeClient) -> tuple[str, list[Any], str]:
    """The server's version, the ReadWriteWorkloads it lists, and the user it sees."""
    try:
        version = await client.request("GET", "/version")
        listed = await client.request("GET", f"/apis/{GROUP}/{VERSION}/{PLURAL}")
        review = await client.create("/apis/authentication.k8s.io/v1/selfsubjectreviews", WHOAMI)
    finally:
        await client.close()
    return str(version["gitVersion"]), list(listed["items"]), str(review["status"]["userInfo"]["username"])


def probe(cfg: KubeConfig) -> tuple[str, list[Any], str]:
    return asyncio.run(_probe(KubeClient(cfg)))


def _doc(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_admin_kubeconfig_with_client_certificate_data(plane: Plane) -> None:
    client = KubeClient.from_kubeconfig(str(kubeconfig_path()))
    assert client.config.client_cert_data is not None and client.config.ca_data is not None
    version, items, user = asyncio.run(_probe(client))
    assert version.startswith("v1.")
    assert isinstance(items, list)
    assert user == "rwscaler-admin"


def test_service_account_kubeconfig_with_a_token(plane: Plane) -> None:
    client = KubeClient.from_kubeconfig(str(plane.sa_kubeconfig))
    assert client.config.namespace == SA_NAMESPACE
    version, items, user = asyncio.run(_probe(client))
    assert version.startswith("v1.") and isinstance(items, list)
    assert user == SA_USER


def test_exec_plugin_hands_out_the_service_account_token(plane: Plane, tmp_path: Path) -> None:
    sa = _doc(plane.sa_kubeconfig)
    token = sa["users"][0]["user"]["token"]
    (tmp_path / "token").write_text(token)
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib, sys\n"
        "token = (pathlib.Path(sys.argv[0]).parent / 'token').read_text()\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1', 'kind': 'ExecCredential',\n"
        "                  'status': {'token': token, 'expirationTimestamp': '2999-01-01T00:00:00Z'}}))\n"
    )
    plugin.chmod(0o755)
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin)}}
    config = {**sa, "users": [{"name": sa["users"][0]["name"], "user": user}]}
    path = tmp_path / "exec.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    assert probe(load_config(str(path)))[2] == SA_USER


def test_in_cluster_service_account_directory(plane: Plane, tmp_path: Path) -> None:
    admin = _doc(kubeconfig_path())
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    token = plane.kube.kubectl("-n", SA_NAMESPACE, "create", "token", SA_NAME, "--duration", "10m").strip()
    (sa_dir / "token").write_text(token)
    (sa_dir / "ca.crt").write_bytes(
        base64.b64decode(admin["clusters"][0]["cluster"]["certificate-authority-data"])
    )
    (sa_dir / "namespace").write_text(SA_NAMESPACE)
    server = urlsplit(admin["clusters"][0]["cluster"]["server"])
    env = {"KUBERNETES_SERVICE_HOST": str(server.hostname), "KUBERNETES_SERVICE_PORT": str(server.port)}

    # load_config's own choice, as in a pod: no kubeconfig named, no $KUBECONFIG.
    cfg = load_config(environ=env, sa_dir=sa_dir)
    assert (cfg.origin, cfg.namespace, cfg.ca_file) == (
        "in-cluster config",
        SA_NAMESPACE,
        str(sa_dir / "ca.crt"),
    )
    version, items, user = probe(cfg)
    assert version.startswith("v1.") and isinstance(items, list) and user == SA_USER

    # The kubelet rotates the token: every request reads the file's current content.
    cfg = load_incluster(sa_dir, env)

    async def rotation() -> tuple[int, str]:
        client = KubeClient(cfg)
        try:
            (sa_dir / "token.new").write_text("not-a-valid-token")
            (sa_dir / "token.new").rename(sa_dir / "token")
            try:
                await client.request("GET", f"/apis/{GROUP}/{VERSION}/{PLURAL}")
                refused = 0
            except KubeApiError as err:
                refused = err.status
            (sa_dir / "token.new").write_text(token)
            (sa_dir / "token.new").rename(sa_dir / "token")
            review = await client.create("/apis/authentication.k8s.io/v1/selfsubjectreviews", WHOAMI)
            return refused, str(review["status"]["userInfo"]["username"])
        finally:
            await client.close()

    assert asyncio.run(rotation()) == (401, SA_USER)


@pytest.mark.parametrize("field", ["certificate-authority-data", "client-key-data"])
def test_a_broken_kubeconfig_is_one_clear_line(plane: Plane, tmp_path: Path, field: str) -> None:
    admin = _doc(kubeconfig_path())
    where = admin["clusters"][0]["cluster"] if field.startswith("certificate") else admin["users"][0]["user"]
    where[field] = base64.b64encode(b"-----BEGIN NOTHING-----\n").decode()
    path = tmp_path / "broken.kubeconfig"
    path.write_text(json.dumps(admin))
    with pytest.raises(KubeConfigError) as err:
        KubeClient.from_kubeconfig(str(path))
    message = str(err.value)
    assert message.startswith(f"kubeconfig {path}: cannot load the "), message
    assert "\n" not in message
