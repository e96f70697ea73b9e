"""rwscaler.kube.config: kubeconfig files and service-account directories written by each test.

The kubeconfigs, token files, exec plugins (small scripts that count their runs) and
service-account directories here are real files; the clock of the token sources is injected so
that expiry needs no sleeping. The `KubeClient` tests talk to a real local HTTP(S) server that
echoes the `Authorization` header it received.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.tiers import need

from rwscaler.kube.client import KubeApiError, KubeClient, ssl_context
from rwscaler.kube.config import (
    KubeConfig,
    KubeConfigError,
    load_config,
    load_incluster,
    load_kubeconfig,
)

PEM_CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def kubeconfig(
    clusters: dict[str, dict[str, Any]],
    users: dict[str, dict[str, Any]],
    contexts: dict[str, dict[str, Any]],
    current: str | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in users.items()],
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current is not None:
        config["current-context"] = current
    return config


def two_contexts() -> dict[str, Any]:
    return kubeconfig(
        {"a": {"server": "https://a.example:6443"}, "b": {"server": "https://b.example:6443"}},
        {"alice": {"token": "alice-token"}, "bob": {"token": "bob-token"}},
        {
            "ctx-a": {"cluster": "a", "user": "alice", "namespace": "shop"},
            "ctx-b": {"cluster": "b", "user": "bob"},
        },
        current="ctx-a",
    )


ENV: dict[str, str] = {}  # no $KUBECONFIG, no KUBERNETES_SERVICE_HOST, no HOME


# ---- contexts and merging ---------------------------------------------------------------------


def test_current_context_is_the_default(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config", two_contexts())
    cfg = load_kubeconfig(str(path), environ=ENV)
    assert (cfg.server, cfg.context, cfg.namespace) == ("https://a.example:6443", "ctx-a", "shop")
    assert cfg.authorization() == "Bearer alice-token"
    assert not cfg.insecure


def test_context_selects_another(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config", two_contexts())
    cfg = load_kubeconfig(str(path), "ctx-b", environ=ENV)
    assert (cfg.server, cfg.context, cfg.namespace) == ("https://b.example:6443", "ctx-b", "default")
    assert cfg.authorization() == "Bearer bob-token"


def test_kubeconfig_list_merges_as_kubectl_does(tmp_path: Path) -> None:
    # The first file sets no current-context and defines cluster "a"; the second redefines "a"
    # (ignored: the first definition wins), adds "c", and sets current-context.
    first = write_config(
        tmp_path / "one" / "config",
        kubeconfig(
            {"a": {"server": "https://first-a:6443"}},
            {"alice": {"token": "first-alice"}},
            {"ctx-a": {"cluster": "a", "user": "alice"}},
        ),
    )
    second = write_config(
        tmp_path / "two" / "config",
        kubeconfig(
            {"a": {"server": "https://second-a:6443"}, "c": {"server": "https://c:6443"}},
            {"alice": {"token": "second-alice"}, "carol": {"token": "carol"}},
            {"ctx-a": {"cluster": "c", "user": "carol"}, "ctx-c": {"cluster": "c", "user": "carol"}},
            current="ctx-a",
        ),
    )
    third = write_config(tmp_path / "three" / "config", {"current-context": "ctx-c"})
    missing = tmp_path / "absent" / "config"  # kubectl skips the files of the list that do not exist
    env = {"KUBECONFIG": os.pathsep.join(str(p) for p in (first, missing, second, third))}
    cfg = load_kubeconfig(environ=env)
    assert (cfg.context, cfg.server, cfg.authorization()) == (
        "ctx-a",
        "https://first-a:6443",
        "Bearer first-alice",
    )
    cfg = load_kubeconfig(context="ctx-c", environ=env)
    assert (cfg.server, cfg.authorization()) == ("https://c:6443", "Bearer carol")


def test_home_kube_config_without_kubeconfig_env(tmp_path: Path) -> None:
    write_config(tmp_path / ".kube" / "config", two_contexts())
    assert load_kubeconfig(environ={"HOME": str(tmp_path)}).context == "ctx-a"


def test_load_config_picks_in_cluster_only_without_any_kubeconfig(tmp_path: Path) -> None:
    sa = service_account(tmp_path / "sa")
    path = write_config(tmp_path / "config", two_contexts())
    in_pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert load_config(environ=in_pod, sa_dir=sa).origin == "in-cluster config"
    assert load_config(str(path), environ=in_pod, sa_dir=sa).context == "ctx-a"
    assert load_config(environ={**in_pod, "KUBECONFIG": str(path)}, sa_dir=sa).context == "ctx-a"
    assert load_config(environ={"KUBECONFIG": str(path)}, sa_dir=sa).context == "ctx-a"


# ---- files and data ---------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_kubeconfig_directory(tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    (conf_dir / "pki").mkdir(parents=True)
    for name in ("ca.crt", "client.crt", "client.key"):
        (conf_dir / "pki" / name).write_text(name)
    (conf_dir / "token").write_text("file-token\n")
    path = write_config(
        conf_dir / "config",
        kubeconfig(
            {"c": {"server": "https://c:6443", "certificate-authority": "pki/ca.crt"}},
            {
                "u": {
                    "client-certificate": "pki/client.crt",
                    "client-key": "./pki/client.key",
                    "tokenFile": "token",
                }
            },
            {"x": {"cluster": "c", "user": "u"}},
            current="x",
        ),
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = Path.cwd()
    os.chdir(elsewhere)
    try:
        cfg = load_kubeconfig(str(path), environ=ENV)
    finally:
        os.chdir(cwd)
    assert cfg.ca_file == str(conf_dir / "pki" / "ca.crt")
    assert cfg.client_cert_file == str(conf_dir / "pki" / "client.crt")
    assert cfg.client_key_file == str(conf_dir / "pki" / "client.key")
    assert cfg.authorization() == "Bearer file-token"


def test_data_is_decoded_and_wins_over_files(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "config",
        kubeconfig(
            {
                "c": {
                    "server": "https://c:6443",
                    "certificate-authority-data": b64(PEM_CA),
                    "certificate-authority": "does-not-matter.crt",
                }
            },
            {"u": {"client-certificate-data": b64(b"CERT PEM"), "client-key-data": b64(b"KEY PEM")}},
            {"x": {"cluster": "c", "user": "u"}},
            current="x",
        ),
    )
    cfg = load_kubeconfig(str(path), environ=ENV)
    assert (cfg.ca_data, cfg.ca_file) == (PEM_CA, None)
    assert (cfg.client_cert_data, cfg.client_key_data) == (b"CERT PEM", b"KEY PEM")
    assert cfg.authorization() is None
    cert = cfg.client_certificate()
    assert cert is not None and (cert.cert_data, cert.key_data) == (b"CERT PEM", b"KEY PEM")
    assert "KEY PEM" not in repr(cfg)


def test_insecure_and_tls_server_name_and_basic_auth(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "config",
        kubeconfig(
            {
                "c": {
                    "server": "https://10.1.2.3:6443",
                    "insecure-skip-tls-verify": True,
                    "tls-server-name": "kube",
                }
            },
            {"u": {"username": "admin", "password": "s3cret"}},
            {"x": {"cluster": "c", "user": "u"}},
            current="x",
        ),
    )
    cfg = load_kubeconfig(str(path), environ=ENV)
    assert cfg.insecure and cfg.tls_server_name == "kube"
    assert cfg.authorization() == "Basic " + b64(b"admin:s3cret")
    context = ssl_context(cfg)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


def test_token_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("one")
    path = write_config(
        tmp_path / "config",
        kubeconfig(
            {"c": {"server": "https://c:6443"}},
            {"u": {"tokenFile": "token", "token": "ignored: tokenFile wins"}},
            {"x": {"cluster": "c", "user": "u"}},
            current="x",
        ),
    )
    cfg = load_kubeconfig(str(path), environ=ENV)
    assert cfg.authorization() == "Bearer one"
    (tmp_path / "token").write_text("two-longer")
    assert cfg.authorization() == "Bearer two-longer"


# ---- exec credential plugins ------------------------------------------------------------------


def exec_plugin(
    tmp_path: Path, status: dict[str, Any], api_version: str = "client.authentication.k8s.io/v1"
) -> Path:
    """A plugin that prints an ExecCredential whose status is read from status.json at each run,
    and appends a line to runs.log each time it runs (with the env and args it was given)."""
    script = tmp_path / "bin" / "plugin.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "status.json").write_text(json.dumps(status))
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, pathlib, sys\n"
        "here = pathlib.Path(__file__).resolve().parent.parent\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "with open(here / 'runs.log', 'a') as f:\n"
        "    f.write(json.dumps([sys.argv[1:], os.environ.get('PLUGIN_ENV'), info['spec']]) + '\\n')\n"
        "status = json.loads((here / 'status.json').read_text())\n"
        "if status.get('fail'):\n"
        "    print('the identity provider said no', file=sys.stderr); sys.exit(3)\n"
        f"print(json.dumps({{'apiVersion': {api_version!r}, 'kind': 'ExecCredential', 'status': status}}))\n"
    )
    script.chmod(0o755)
    return write_config(
        tmp_path / "config",
        kubeconfig(
            {"c": {"server": "https://c:6443"}},
            {
                "u": {
                    "exec": {
                        "apiVersion": api_version,
                        "command": "./bin/plugin.py",  # a path: relative to the kubeconfig's directory
                        "args": ["--cluster", "c"],
                        "env": [{"name": "PLUGIN_ENV", "value": "from-kubeconfig"}],
                    }
                }
            },
            {"x": {"cluster": "c", "user": "u"}},
            current="x",
        ),
    )


def runs(tmp_path: Path) -> list[Any]:
    log = tmp_path / "runs.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    "api_version", ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]
)
def test_exec_plugin_is_cached_until_expiry(tmp_path: Path, api_version: str) -> None:
    clock = Clock()
    expiry = clock.now + 3600
    path = exec_plugin(tmp_path, {"token": "t1", "expirationTimestamp": stamp(expiry)}, api_version)
    cfg = load_kubeconfig(str(path), environ=ENV, clock=clock)
    assert runs(tmp_path) == []  # nothing runs before a credential is needed
    for _ in range(3):
        assert cfg.authorization() == "Bearer t1"
    assert runs(tmp_path) == [[["--cluster", "c"], "from-kubeconfig", {"interactive": False}]]

    (tmp_path / "status.json").write_text(
        json.dumps({"token": "t2", "expirationTimestamp": stamp(expiry + 3600)})
    )
    clock.now = expiry - 60
    assert cfg.authorization() == "Bearer t1"
    assert len(runs(tmp_path)) == 1
    clock.now = expiry + 1
    assert cfg.authorization() == "Bearer t2"
    assert cfg.authorization() == "Bearer t2"
    assert len(runs(tmp_path)) == 2
    cred = cfg.credential()
    assert cred is not None and cred.expires_at == expiry + 3600


def test_exec_plugin_without_expiry_runs_again_after_invalidate(tmp_path: Path) -> None:
    path = exec_plugin(tmp_path, {"token": "t1"})
    cfg = load_kubeconfig(str(path), environ=ENV)
    assert cfg.authorization() == cfg.authorization() == "Bearer t1"
    assert len(runs(tmp_path)) == 1
    cfg.invalidate()  # what KubeClient does on a 401
    assert cfg.authorization() == "Bearer t1"
    assert len(runs(tmp_path)) == 2


def test_exec_plugin_client_certificate(tmp_path: Path) -> None:
    path = exec_plugin(tmp_path, {"clientCertificateData": "CERT", "clientKeyData": "KEY"})
    cfg = load_kubeconfig(str(path), environ=ENV)
    cert = cfg.client_certificate()
    assert cert is not None and (cert.cert_data, cert.key_data) == (b"CERT", b"KEY")
    assert cfg.authorization() is None


def test_exec_plugin_failure_is_a_clear_error(tmp_path: Path) -> None:
    path = exec_plugin(tmp_path, {"fail": True})
    cfg = load_kubeconfig(str(path), environ=ENV)
    with pytest.raises(KubeConfigError) as err:
        cfg.authorization()
    assert str(err.value) == (
        f"kubeconfig {path}: user 'u': exec plugin '{tmp_path / 'bin' / 'plugin.py'}' exited with 3: "
        "the identity provider said no"
    )


def test_exec_plugin_not_found_shows_the_install_hint(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "config",
        kubeconfig(
            {"c": {"server": "https://c:6443"}},
            {
                "u": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "rwscaler-no-such-plugin",
                        "installHint": "install it from your cloud's SDK",
                    }
                }
            },
            {"x": {"cluster": "c", "user": "u"}},
            current="x",
        ),
    )
    with pytest.raises(KubeConfigError, match=r"'rwscaler-no-such-plugin': command not found \(install it"):
        load_kubeconfig(str(path), environ=ENV).authorization()


# ---- in-cluster -------------------------------------------------------------------------------


def service_account(sa: Path, token: str = "sa-token-1", namespace: str | None = "shop") -> Path:
    sa.mkdir(parents=True, exist_ok=True)
    (sa / "token").write_text(token)
    (sa / "ca.crt").write_bytes(PEM_CA)
    if namespace is not None:
        (sa / "namespace").write_text(namespace)
    return sa


def test_in_cluster_reads_the_service_account_directory(tmp_path: Path) -> None:
    sa = service_account(tmp_path / "sa")
    cfg = load_incluster(sa, {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert cfg.server == "https://10.96.0.1:443"
    assert (cfg.ca_file, cfg.namespace, cfg.origin) == (str(sa / "ca.crt"), "shop", "in-cluster config")
    assert cfg.authorization() == "Bearer sa-token-1"


def test_in_cluster_ipv6_host_is_bracketed_and_namespace_defaults(tmp_path: Path) -> None:
    sa = service_account(tmp_path / "sa", namespace=None)
    cfg = load_incluster(sa, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"})
    assert (cfg.server, cfg.namespace) == ("https://[fd00::1]:6443", "default")


def test_in_cluster_token_rotation(tmp_path: Path) -> None:
    clock = Clock()
    sa = service_account(tmp_path / "sa")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = load_incluster(sa, env, clock)
    assert cfg.authorization() == "Bearer sa-token-1"
    # The kubelet swaps the projected token atomically (a new file renamed into place).
    (sa / "token.new").write_text("sa-token-2")
    (sa / "token.new").rename(sa / "token")
    assert cfg.authorization() == "Bearer sa-token-2"
    # Rewritten in place with the same size and mtime, it is still re-read after a minute.
    st = (sa / "token").stat()
    (sa / "token").write_text("sa-token-3")
    os.utime(sa / "token", ns=(st.st_atime_ns, st.st_mtime_ns))
    clock.now += 61
    assert cfg.authorization() == "Bearer sa-token-3"


def test_kube_client_sends_the_rotated_token(tmp_path: Path, echo_server: str) -> None:
    sa = service_account(tmp_path / "sa")
    host, port = echo_server.removeprefix("http://").split(":")
    cfg = load_incluster(sa, {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port})
    # The echo server speaks plain HTTP; the same settings with an http:// server URL.
    cfg = KubeConfig(server=echo_server, token_source=cfg.token_source, origin=cfg.origin)

    async def scenario() -> list[Any]:
        client = KubeClient(cfg)
        try:
            first = await client.get("/version")
            (sa / "token.new").write_text("sa-token-2")
            (sa / "token.new").rename(sa / "token")
            second = await client.get("/version")
            return [first, second]
        finally:
            await client.close()

    first, second = asyncio.run(scenario())
    assert first == {"authorization": "Bearer sa-token-1", "path": "/version"}
    assert second == {"authorization": "Bearer sa-token-2", "path": "/version"}


def test_kube_client_reports_a_vanished_token_as_an_api_error(tmp_path: Path, echo_server: str) -> None:
    sa = service_account(tmp_path / "sa")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = KubeConfig(server=echo_server, token_source=load_incluster(sa, env).token_source)

    async def scenario() -> KubeApiError:
        client = KubeClient(cfg)
        (sa / "token").unlink()
        try:
            await client.get("/version")
        except KubeApiError as err:
            return err
        finally:
            await client.close()
        raise AssertionError("no error")

    err = asyncio.run(scenario())
    assert (err.status, err.reason) == (0, "NoCredentials")
    assert f"token file {sa / 'token'}" in err.message


# ---- errors -----------------------------------------------------------------------------------


def test_error_missing_kubeconfig_file(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError) as err:
        load_kubeconfig(str(tmp_path / "nope"), environ=ENV)
    assert str(err.value) == f"kubeconfig {tmp_path / 'nope'}: no such file"


def test_error_kubeconfig_env_lists_no_existing_file(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match=r"\$KUBECONFIG: none of its files exists"):
        load_kubeconfig(environ={"KUBECONFIG": str(tmp_path / "nope")})


def test_error_unknown_context(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config", two_contexts())
    with pytest.raises(KubeConfigError) as err:
        load_kubeconfig(str(path), "ctx-z", environ=ENV)
    assert str(err.value) == f"kubeconfig {path}: context 'ctx-z' not found (contexts: ctx-a, ctx-b)"


def test_error_no_current_context(tmp_path: Path) -> None:
    config = two_contexts()
    del config["current-context"]
    path = write_config(tmp_path / "config", config)
    with pytest.raises(KubeConfigError) as err:
        load_kubeconfig(str(path), environ=ENV)
    assert str(err.value) == f"kubeconfig {path}: no current-context is set and no context is given"


def test_error_auth_provider_is_unsupported(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "config",
        kubeconfig(
            {"c": {"server": "https://c:6443"}},
            {"u": {"auth-provider": {"name": "gcp", "config": {}}}},
            {"x": {"cluster": "c", "user": "u"}},
            current="x",
        ),
    )
    with pytest.raises(KubeConfigError) as err:
        load_kubeconfig(str(path), environ=ENV)
    assert str(err.value).startswith(f"kubeconfig {path}: user 'u': auth-provider 'gcp' is not supported")


def test_error_in_cluster_token_missing(tmp_path: Path) -> None:
    sa = service_account(tmp_path / "sa")
    (sa / "token").unlink()
    with pytest.raises(KubeConfigError) as err:
        load_incluster(sa, {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert str(err.value) == (
        f"in-cluster config: no service account token at {sa / 'token'} "
        "(is automountServiceAccountToken false for this pod?)"
    )


def test_error_in_cluster_without_port(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="KUBERNETES_SERVICE_PORT must both be set"):
        load_incluster(service_account(tmp_path / "sa"), {"KUBERNETES_SERVICE_HOST": "10.96.0.1"})


@pytest.mark.parametrize(
    ("cluster", "user", "message"),
    [
        ({}, {}, "cluster 'c': server is missing"),
        (
            {"server": "https://c", "certificate-authority": "ca.crt"},
            {},
            "cluster 'c': certificate-authority {dir}/ca.crt: no such file",
        ),
        (
            {"server": "https://c", "certificate-authority-data": "not base64!"},
            {},
            "cluster 'c': certificate-authority-data is not valid base64",
        ),
        (
            {"server": "https://c"},
            {"client-certificate-data": b64(b"x")},
            "user 'u': a client certificate needs both client-certificate and client-key",
        ),
        ({"server": "https://c"}, {"tokenFile": "tok"}, "user 'u': tokenFile {dir}/tok: no such file"),
        (
            {"server": "https://c"},
            {"exec": {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}},
            "user 'u': exec: apiVersion 'client.authentication.k8s.io/v1alpha1' is not supported",
        ),
    ],
)
def test_error_names_the_file_and_key(
    tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], message: str
) -> None:
    path = write_config(
        tmp_path / "config",
        kubeconfig({"c": cluster}, {"u": user}, {"x": {"cluster": "c", "user": "u"}}, current="x"),
    )
    with pytest.raises(KubeConfigError) as err:
        load_kubeconfig(str(path), environ=ENV)
    assert str(err.value).startswith(f"kubeconfig {path}: " + message.format(dir=tmp_path))


def test_error_context_names_a_missing_cluster(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config", kubeconfig({}, {}, {"x": {"cluster": "gone"}}, current="x"))
    with pytest.raises(KubeConfigError) as err:
        load_kubeconfig(str(path), environ=ENV)
    assert str(err.value) == f"kubeconfig {path}: cluster 'gone' (of context 'x') not found"


# ---- TLS: certificates as data, tls-server-name, against a real HTTPS server ----------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed server certificate for the name `kube.test` (not for 127.0.0.1), and a
    client certificate signed by it, made with openssl."""
    openssl = shutil.which("openssl")
    need(openssl is not None, "no openssl binary: apt-get install openssl")
    assert openssl is not None
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=kube.test",
        "-addext",
        "subjectAltName=DNS:kube.test",
        "-keyout",
        "server.key",
        "-out",
        "server.crt",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=admin/O=system:masters",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
    )
    run(
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "server.crt",
        "-CAkey",
        "server.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "client.crt",
    )
    return d


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        body = {"authorization": self.headers.get("Authorization"), "path": self.path}
        for rdn in peer["subject"] if peer else ():
            for pair in rdn:
                if pair[0] == "commonName":
                    body["client"] = str(pair[1])
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


def _serve(context: ssl.SSLContext | None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def echo_server() -> Iterator[str]:
    yield from _serve(None)


@pytest.fixture
def tls_echo_server(pki: Path) -> Iterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "server.crt"))
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    yield from _serve(context)


def _get(cfg: KubeConfig) -> dict[str, Any] | None:
    async def go() -> dict[str, Any] | None:
        client = KubeClient(cfg)
        try:
            return await client.get("/api")
        finally:
            await client.close()

    return asyncio.run(go())


def test_client_certificate_data_and_tls_server_name(tmp_path: Path, pki: Path, tls_echo_server: str) -> None:
    cluster = {
        "server": tls_echo_server,
        "certificate-authority-data": b64((pki / "server.crt").read_bytes()),
        "tls-server-name": "kube.test",
    }
    user = {
        "client-certificate-data": b64((pki / "client.crt").read_bytes()),
        "client-key-data": b64((pki / "client.key").read_bytes()),
    }
    path = write_config(
        tmp_path / "config",
        kubeconfig({"c": cluster}, {"u": user}, {"x": {"cluster": "c", "user": "u"}}, "x"),
    )
    before = set(Path(tempfile.gettempdir()).glob("rwscaler-tls-*"))
    assert _get(load_kubeconfig(str(path), environ=ENV)) == {
        "authorization": None,
        "path": "/api",
        "client": "admin",
    }
    assert set(Path(tempfile.gettempdir()).glob("rwscaler-tls-*")) == before  # key files removed

    # Without tls-server-name the certificate (for kube.test) does not match 127.0.0.1.
    del cluster["tls-server-name"]
    path = write_config(
        tmp_path / "config",
        kubeconfig({"c": cluster}, {"u": user}, {"x": {"cluster": "c", "user": "u"}}, "x"),
    )
    with pytest.raises(KubeApiError, match=r"Unreachable.*certificate"):
        _get(load_kubeconfig(str(path), environ=ENV))


def test_client_certificate_files_and_insecure(tmp_path: Path, pki: Path, tls_echo_server: str) -> None:
    cluster = {"server": tls_echo_server, "insecure-skip-tls-verify": True}
    user = {
        "client-certificate": str(pki / "client.crt"),
        "client-key": str(pki / "client.key"),
        "token": "t",
    }
    path = write_config(
        tmp_path / "config",
        kubeconfig({"c": cluster}, {"u": user}, {"x": {"cluster": "c", "user": "u"}}, "x"),
    )
    assert _get(load_kubeconfig(str(path), environ=ENV)) == {
        "authorization": "Bearer t",
        "path": "/api",
        "client": "admin",
    }
