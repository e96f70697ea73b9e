"""Where the API server is and how to authenticate to it: a kubeconfig or the in-cluster account.

`load_config(kubeconfig, context)` returns a `KubeConfig` (server, CA, client certificate, a
source of bearer tokens, default namespace); `KubeClient` and the kopf login handler build their
connections from it. This replaces the `kubernetes` package's loaders (about 126 MB installed with
google-auth, requests and friends) for the parts rwscaler needs:

- in-cluster: `KUBERNETES_SERVICE_HOST`/`_PORT`, and the mounted service account's `token`
  (re-read when the file changes and at least every minute, since the kubelet rotates projected
  tokens), `ca.crt` and `namespace`;
- a kubeconfig: `--kubeconfig FILE`, else `$KUBECONFIG` (a list merged as kubectl merges it: the
  first file to define a name wins, the first `current-context` wins), else `~/.kube/config`;
  certificate authority as file or data, `insecure-skip-tls-verify`, `tls-server-name`, client
  certificate and key as file or data, `token`, `tokenFile`, `username`/`password`, and `exec`
  credential plugins (client.authentication.k8s.io v1 and v1beta1), whose credential is cached
  until its `expirationTimestamp`. Relative paths resolve against the defining file's directory.
  `auth-provider` (the removed gcp/azure/oidc plugins) is refused with a message saying so.

Every problem is a `KubeConfigError` whose message names the file and the key at fault.
Reading a token may read a file or run a command: callers on an event loop call
`KubeConfig.authorization()` in a thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = Path("~/.kube/config")
TOKEN_REREAD_SECONDS = 60.0
EXEC_EXPIRY_MARGIN_SECONDS = 10.0
EXEC_TIMEOUT_SECONDS = 120.0
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")

Clock = Callable[[], float]


class KubeConfigError(Exception):
    """The connection settings cannot be loaded; the message says where and what (no traceback needed)."""


@dataclass(frozen=True)
class Credential:
    """What a token source yields: a bearer token and/or a client certificate (exec plugins)."""

    token: str | None = field(default=None, repr=False)
    client_certificate_data: bytes | None = field(default=None, repr=False)
    client_key_data: bytes | None = field(default=None, repr=False)
    expires_at: float | None = None  # seconds since the epoch; None: until refused


class TokenSource(Protocol):
    """A source of credentials that may change over time (a token file, an exec plugin)."""

    def credential(self) -> Credential:
        """The current credential; may read a file or run a command (blocking)."""
        ...

    def invalidate(self) -> None:
        """Forget any cached credential (the API server refused it)."""
        ...


class StaticToken:
    def __init__(self, token: str) -> None:
        self._credential = Credential(token=token)

    def credential(self) -> Credential:
        return self._credential

    def invalidate(self) -> None:
        pass


class TokenFile:
    """A token in a file, re-read when the file changes (mtime, inode, size) or a minute has passed."""

    def __init__(self, path: Path, what: str, clock: Clock = time.time) -> None:
        self.path = path
        self._what = what  # for messages: "in-cluster config" or "FILE: user 'x'"
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._read_at = 0.0
        self._token: str | None = None

    def credential(self) -> Credential:
        with self._lock:
            try:
                st = self.path.stat()
            except OSError as err:
                raise KubeConfigError(f"{self._what}: token file {self.path}: {err.strerror}") from None
            stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
            now = self._clock()
            if self._token is None or stamp != self._stamp or now - self._read_at >= TOKEN_REREAD_SECONDS:
                try:
                    token = self.path.read_text().strip()
                except OSError as err:
                    raise KubeConfigError(f"{self._what}: token file {self.path}: {err.strerror}") from None
                if not token:
                    raise KubeConfigError(f"{self._what}: token file {self.path} is empty")
                self._token, self._stamp, self._read_at = token, stamp, now
            return Credential(token=self._token)

    def invalidate(self) -> None:
        with self._lock:
            self._token = None


@dataclass(frozen=True)
class ExecSpec:
    """A kubeconfig `user.exec` stanza."""

    api_version: str
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    install_hint: str | None = None


class ExecPlugin:
    """Runs a client-go credential plugin and caches its ExecCredential until it expires."""

    def __init__(self, spec: ExecSpec, what: str, clock: Clock = time.time) -> None:
        self.spec = spec
        self._what = what
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: Credential | None = None

    def credential(self) -> Credential:
        with self._lock:
            cached = self._cached
            if cached is not None and (
                cached.expires_at is None or self._clock() < cached.expires_at - EXEC_EXPIRY_MARGIN_SECONDS
            ):
                return cached
            self._cached = self._run()
            return self._cached

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def _run(self) -> Credential:
        spec = self.spec
        where = f"{self._what}: exec plugin {spec.command!r}"
        env = dict(os.environ)
        env.update(dict(spec.env))
        env["KUBERNETES_EXEC_INFO"] = json.dumps(
            {"apiVersion": spec.api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
        )
        try:
            done = subprocess.run(
                [spec.command, *spec.args],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=EXEC_TIMEOUT_SECONDS,
                check=False,
            )
        except FileNotFoundError:
            hint = f" ({spec.install_hint.strip()})" if spec.install_hint else ""
            raise KubeConfigError(f"{where}: command not found{hint}") from None
        except (OSError, subprocess.SubprocessError) as err:
            raise KubeConfigError(f"{where}: {err}") from None
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-3:]
            raise KubeConfigError(f"{where} exited with {done.returncode}: {' / '.join(tail) or 'no output'}")
        try:
            out = json.loads(done.stdout)
        except ValueError:
            raise KubeConfigError(f"{where}: its output is not an ExecCredential JSON object") from None
        if not isinstance(out, dict) or out.get("kind") != "ExecCredential":
            raise KubeConfigError(f"{where}: its output is not an ExecCredential")
        if out.get("apiVersion") != spec.api_version:
            raise KubeConfigError(
                f"{where}: it answered apiVersion {out.get('apiVersion')!r}, the kubeconfig asks {spec.api_version!r}"
            )
        status = out.get("status")
        if not isinstance(status, dict):
            raise KubeConfigError(f"{where}: the ExecCredential has no status")
        token = status.get("token") or None
        cert = status.get("clientCertificateData") or None
        key = status.get("clientKeyData") or None
        if token is None and (cert is None or key is None):
            raise KubeConfigError(
                f"{where}: the ExecCredential status has neither a token nor clientCertificateData "
                "and clientKeyData"
            )
        if (cert is None) != (key is None):
            raise KubeConfigError(
                f"{where}: the ExecCredential status has only one of the client certificate and key"
            )
        expires_at = None
        stamp = status.get("expirationTimestamp")
        if stamp:
            try:
                expires_at = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise KubeConfigError(f"{where}: invalid expirationTimestamp {stamp!r}") from None
        return Credential(
            token=str(token) if token else None,
            client_certificate_data=str(cert).encode() if cert else None,
            client_key_data=str(key).encode() if key else None,
            expires_at=expires_at,
        )


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate and key, each as a file or as PEM data."""

    cert_file: str | None = None
    cert_data: bytes | None = field(default=None, repr=False)
    key_file: str | None = None
    key_data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class KubeConfig:
    """The settings of one connection to an API server (immutable; the token source may refresh)."""

    server: str
    ca_file: str | None = None
    ca_data: bytes | None = None  # PEM
    insecure: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = None
    client_cert_file: str | None = None
    client_cert_data: bytes | None = field(default=None, repr=False)  # PEM
    client_key_file: str | None = None
    client_key_data: bytes | None = field(default=None, repr=False)  # PEM
    token_source: TokenSource | None = field(default=None, repr=False, compare=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    namespace: str = "default"
    context: str | None = None  # the kubeconfig context; None in-cluster
    origin: str = ""  # "in-cluster config" or "kubeconfig FILE[, FILE...]", for messages

    def credential(self) -> Credential | None:
        """The token source's current credential (blocking: may read a file or run a command)."""
        return self.token_source.credential() if self.token_source is not None else None

    def bearer_token(self) -> str | None:
        cred = self.credential()
        return cred.token if cred is not None else None

    def authorization(self) -> str | None:
        """The `Authorization` header value ("Bearer ..." or "Basic ..."), or None (blocking)."""
        token = self.bearer_token()
        if token:
            return f"Bearer {token}"
        if self.username is not None and self.password is not None:
            pair = f"{self.username}:{self.password}".encode()
            return f"Basic {base64.b64encode(pair).decode()}"
        return None

    def client_certificate(self) -> ClientCertificate | None:
        """The client certificate: the kubeconfig's, else an exec plugin's (blocking)."""
        if (self.client_cert_file or self.client_cert_data) and (
            self.client_key_file or self.client_key_data
        ):
            return ClientCertificate(
                self.client_cert_file, self.client_cert_data, self.client_key_file, self.client_key_data
            )
        cred = self.credential()
        if cred is not None and cred.client_certificate_data and cred.client_key_data:
            return ClientCertificate(cert_data=cred.client_certificate_data, key_data=cred.client_key_data)
        return None

    def invalidate(self) -> None:
        """Forget a cached credential, so the next one is fetched anew (after a 401)."""
        if self.token_source is not None:
            self.token_source.invalidate()


# ---- in-cluster -------------------------------------------------------------------------------


def in_cluster_requested(kubeconfig: str | None, environ: Mapping[str, str]) -> bool:
    """In-cluster when no kubeconfig is named, `$KUBECONFIG` is unset and the service host is set."""
    return (
        kubeconfig is None and bool(environ.get("KUBERNETES_SERVICE_HOST")) and not environ.get("KUBECONFIG")
    )


def load_incluster(
    sa_dir: Path = SERVICE_ACCOUNT_DIR, environ: Mapping[str, str] | None = None, clock: Clock = time.time
) -> KubeConfig:
    """The pod's service account: the API server from the environment, the rest from `sa_dir`."""
    env = os.environ if environ is None else environ
    what = "in-cluster config"
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeConfigError(f"{what}: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    token = TokenFile(sa_dir / "token", what, clock)
    if not token.path.is_file():
        raise KubeConfigError(
            f"{what}: no service account token at {token.path} "
            "(is automountServiceAccountToken false for this pod?)"
        )
    token.credential()  # fail now, not at the first request, if it is unreadable or empty
    ca = sa_dir / "ca.crt"
    ns_file = sa_dir / "namespace"
    namespace = ns_file.read_text().strip() if ns_file.is_file() else ""
    return KubeConfig(
        server=f"https://{host}:{port}",
        ca_file=str(ca) if ca.is_file() else None,  # like client-go: without it, the system's CAs
        token_source=token,
        namespace=namespace or "default",
        origin=what,
    )


# ---- kubeconfig files -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    body: Mapping[str, Any]
    file: Path


@dataclass
class _Merged:
    files: list[Path]
    clusters: dict[str, _Entry] = field(default_factory=dict)
    users: dict[str, _Entry] = field(default_factory=dict)
    contexts: dict[str, _Entry] = field(default_factory=dict)
    current_context: str | None = None

    @property
    def names(self) -> str:
        return ", ".join(str(f) for f in self.files)


def kubeconfig_files(kubeconfig: str | None = None, environ: Mapping[str, str] | None = None) -> list[Path]:
    """The kubeconfig files to merge, as kubectl picks them."""
    env = os.environ if environ is None else environ
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise KubeConfigError(f"kubeconfig {path}: no such file")
        return [path]
    listed = env.get("KUBECONFIG", "")
    if listed:
        named = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
        seen: list[Path] = []
        for p in named:  # kubectl skips the files of the list that do not exist, and duplicates
            if p.is_file() and p not in seen:
                seen.append(p)
        if not seen:
            raise KubeConfigError(f"$KUBECONFIG: none of its files exists ({listed})")
        return seen
    home = env.get("HOME")
    default = Path(home) / ".kube" / "config" if home else DEFAULT_KUBECONFIG.expanduser()
    if not default.is_file():
        raise KubeConfigError(
            f"kubeconfig {default}: no such file (and neither --kubeconfig, $KUBECONFIG nor an in-cluster "
            "service account is given)"
        )
    return [default]


def _read_file(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise KubeConfigError(f"kubeconfig {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise KubeConfigError(f"kubeconfig {path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KubeConfigError(f"kubeconfig {path}: not a mapping")
    return data


def _merge(files: Sequence[Path]) -> _Merged:
    merged = _Merged(list(files))
    for path in files:
        data = _read_file(path)
        for key, kind, target in (
            ("clusters", "cluster", merged.clusters),
            ("users", "user", merged.users),
            ("contexts", "context", merged.contexts),
        ):
            items = data.get(key) or []
            if not isinstance(items, list):
                raise KubeConfigError(f"kubeconfig {path}: {key} is not a list")
            for i, item in enumerate(items):
                if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
                    raise KubeConfigError(f"kubeconfig {path}: {key}[{i}] has no name")
                body = item.get(kind) or {}
                if not isinstance(body, dict):
                    raise KubeConfigError(f"kubeconfig {path}: {kind} {item['name']!r} is not a mapping")
                target.setdefault(item["name"], _Entry(body, path))
        current = data.get("current-context")
        if merged.current_context is None and isinstance(current, str) and current:
            merged.current_context = current
    return merged


def _resolve(entry: _Entry, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (entry.file.parent / path))


def _file(entry: _Entry, key: str, what: str) -> str | None:
    value = entry.body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise KubeConfigError(f"kubeconfig {entry.file}: {what}: {key} is not a string")
    path = _resolve(entry, value)
    if not Path(path).is_file():
        raise KubeConfigError(f"kubeconfig {entry.file}: {what}: {key} {path}: no such file")
    return path


def _data(entry: _Entry, key: str, what: str) -> bytes | None:
    value = entry.body.get(key)
    if value is None or value == "":
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise KubeConfigError(f"kubeconfig {entry.file}: {what}: {key} is not valid base64") from None


def _exec_spec(entry: _Entry, what: str) -> ExecSpec:
    body = entry.body["exec"]
    where = f"kubeconfig {entry.file}: {what}: exec"
    if not isinstance(body, dict):
        raise KubeConfigError(f"{where} is not a mapping")
    api_version = body.get("apiVersion")
    if api_version not in EXEC_API_VERSIONS:
        raise KubeConfigError(
            f"{where}: apiVersion {api_version!r} is not supported (use one of {', '.join(EXEC_API_VERSIONS)})"
        )
    command = body.get("command")
    if not isinstance(command, str) or not command:
        raise KubeConfigError(f"{where}: command is missing")
    if os.sep in command and not Path(command).is_absolute():
        command = _resolve(entry, command)  # kubectl resolves only a command with a path separator
    args = body.get("args") or []
    if not isinstance(args, list):
        raise KubeConfigError(f"{where}: args is not a list")
    env: list[tuple[str, str]] = []
    for item in body.get("env") or []:
        if not isinstance(item, dict) or "name" not in item or "value" not in item:
            raise KubeConfigError(f"{where}: each env entry needs a name and a value")
        env.append((str(item["name"]), str(item["value"])))
    hint = body.get("installHint")
    return ExecSpec(
        api_version=str(api_version),
        command=command,
        args=tuple(str(a) for a in args),
        env=tuple(env),
        install_hint=str(hint) if hint else None,
    )


def load_kubeconfig(
    kubeconfig: str | None = None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock = time.time,
) -> KubeConfig:
    """The settings of `context` (default: the current context) of the kubeconfig kubectl would use."""
    merged = _merge(kubeconfig_files(kubeconfig, environ))
    name = context or merged.current_context
    if not name:
        raise KubeConfigError(f"kubeconfig {merged.names}: no current-context is set and no context is given")
    ctx = merged.contexts.get(name)
    if ctx is None:
        known = ", ".join(sorted(merged.contexts)) or "none"
        raise KubeConfigError(f"kubeconfig {merged.names}: context {name!r} not found (contexts: {known})")
    cluster_name = ctx.body.get("cluster")
    if not isinstance(cluster_name, str) or not cluster_name:
        raise KubeConfigError(f"kubeconfig {ctx.file}: context {name!r} names no cluster")
    cluster = merged.clusters.get(cluster_name)
    if cluster is None:
        raise KubeConfigError(
            f"kubeconfig {merged.names}: cluster {cluster_name!r} (of context {name!r}) not found"
        )
    what = f"cluster {cluster_name!r}"
    server = cluster.body.get("server")
    if not isinstance(server, str) or not server:
        raise KubeConfigError(f"kubeconfig {cluster.file}: {what}: server is missing")
    ca_data = _data(cluster, "certificate-authority-data", what)
    ca_file = None if ca_data else _file(cluster, "certificate-authority", what)
    tls_server_name = cluster.body.get("tls-server-name") or None
    proxy_url = cluster.body.get("proxy-url") or None

    user_name = ctx.body.get("user") or ""
    user: _Entry | None = None
    if user_name:
        user = merged.users.get(str(user_name))
        if user is None:
            raise KubeConfigError(
                f"kubeconfig {merged.names}: user {user_name!r} (of context {name!r}) not found"
            )
    fields: dict[str, Any] = {}
    if user is not None:
        fields = _user_fields(user, f"user {user_name!r}", clock)
    namespace = ctx.body.get("namespace") or "default"
    return KubeConfig(
        server=server,
        ca_file=ca_file,
        ca_data=ca_data,
        insecure=bool(cluster.body.get("insecure-skip-tls-verify", False)),
        tls_server_name=str(tls_server_name) if tls_server_name else None,
        proxy_url=str(proxy_url) if proxy_url else None,
        namespace=str(namespace),
        context=name,
        origin=f"kubeconfig {merged.names}",
        **fields,
    )


def _user_fields(user: _Entry, what: str, clock: Clock) -> dict[str, Any]:
    body = user.body
    where = f"kubeconfig {user.file}: {what}"
    if body.get("auth-provider"):
        provider = body["auth-provider"].get("name") if isinstance(body["auth-provider"], dict) else None
        raise KubeConfigError(
            f"{where}: auth-provider {provider or '?'!r} is not supported (it was removed from kubectl too); "
            "use an exec credential plugin, e.g. gke-gcloud-auth-plugin or kubelogin"
        )
    cert_data = _data(user, "client-certificate-data", what)
    cert_file = None if cert_data else _file(user, "client-certificate", what)
    key_data = _data(user, "client-key-data", what)
    key_file = None if key_data else _file(user, "client-key", what)
    if bool(cert_data or cert_file) != bool(key_data or key_file):
        raise KubeConfigError(f"{where}: a client certificate needs both client-certificate and client-key")
    source: TokenSource | None = None
    if body.get("exec"):
        spec = _exec_spec(user, what)
        source = ExecPlugin(spec, f"kubeconfig {user.file}: {what}", clock)
    elif body.get("tokenFile"):
        path = _file(user, "tokenFile", what)
        assert path is not None
        source = TokenFile(Path(path), where, clock)
    elif body.get("token"):
        source = StaticToken(str(body["token"]))
    username, password = body.get("username"), body.get("password")
    if (username is None) != (password is None):
        raise KubeConfigError(f"{where}: basic authentication needs both username and password")
    return {
        "client_cert_file": cert_file,
        "client_cert_data": cert_data,
        "client_key_file": key_file,
        "client_key_data": key_data,
        "token_source": source,
        "username": str(username) if username is not None else None,
        "password": str(password) if password is not None else None,
    }


def load_config(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    sa_dir: Path = SERVICE_ACCOUNT_DIR,
    clock: Clock = time.time,
) -> KubeConfig:
    """In-cluster settings inside a pod (unless a kubeconfig is named or `$KUBECONFIG` is set), else
    the kubeconfig's."""
    env = os.environ if environ is None else environ
    if in_cluster_requested(kubeconfig, env):
        return load_incluster(sa_dir, env, clock)
    return load_kubeconfig(kubeconfig, context, env, clock)
