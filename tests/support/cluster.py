"""Where the local Kubernetes control plane is, and whether it is up.

`make cluster` (hack/cluster/up.sh, docs/cluster.md) starts kube-apiserver on
https://127.0.0.1:26443 and writes an admin kubeconfig to
``$RWSCALER_CACHE/cluster/kubeconfig`` (``RWSCALER_CACHE`` defaults to
``~/.cache/rwscaler``). Tests that need the plane skip with the reason returned by
:func:`cluster_available`, which names ``make cluster``.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

APISERVER_URL = "https://127.0.0.1:26443"
"""The kube-apiserver of the local control plane (see hack/cluster/lib.sh)."""

_HINT = "run `make cluster` to build and start the local control plane"


def cache_dir() -> Path:
    """``$RWSCALER_CACHE``, or ``~/.cache/rwscaler`` when it is unset."""
    env = os.environ.get("RWSCALER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "rwscaler"


def kubeconfig_path() -> Path:
    """The admin (``system:masters``) kubeconfig that `make cluster` writes."""
    return cache_dir() / "cluster" / "kubeconfig"


def _first_named(items: Any, key: str) -> dict[str, Any]:
    """The ``key`` mapping of the first entry of a kubeconfig list (clusters, users)."""
    if isinstance(items, list) and items and isinstance(items[0], dict):
        value = items[0].get(key)
        if isinstance(value, dict):
            return value
    return {}


def _ssl_context(config: dict[str, Any], workdir: Path) -> ssl.SSLContext:
    """Verify the server with the kubeconfig's CA; present its client certificate if any."""
    cluster = _first_named(config.get("clusters"), "cluster")
    ca_data = cluster.get("certificate-authority-data")
    if isinstance(ca_data, str):
        context = ssl.create_default_context(cadata=base64.b64decode(ca_data).decode())
    else:
        context = ssl.create_default_context()
    user = _first_named(config.get("users"), "user")
    cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
    if isinstance(cert_data, str) and isinstance(key_data, str):
        cert, key = workdir / "client.crt", workdir / "client.key"
        cert.write_bytes(base64.b64decode(cert_data))
        key.write_bytes(base64.b64decode(key_data))
        context.load_cert_chain(cert, key)
    return context


def cluster_available(timeout: float = 3.0) -> tuple[bool, str]:
    """Whether the local control plane answers; the reason says why not and what to run.

    True when the kubeconfig exists and its kube-apiserver answers ``/readyz`` with ``ok``.
    """
    path = kubeconfig_path()
    if not path.is_file():
        return False, f"no kubeconfig at {path}: {_HINT}"
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        return False, f"cannot read the kubeconfig {path} ({exc}): {_HINT}"
    if not isinstance(config, dict):
        return False, f"the kubeconfig {path} is not a mapping: {_HINT}"
    server = _first_named(config.get("clusters"), "cluster").get("server", APISERVER_URL)
    url = f"{str(server).rstrip('/')}/readyz"
    try:
        with tempfile.TemporaryDirectory(prefix="rwscaler-readyz-") as tmp:
            context = _ssl_context(config, Path(tmp))
            with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
                body = response.read(64).decode(errors="replace").strip()
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered HTTP {exc.code} (not ready): {_HINT}"
    except (OSError, ssl.SSLError, ValueError) as exc:
        return False, f"the control plane does not answer at {url} ({exc}): {_HINT}"
    if body != "ok":
        return False, f"{url} answered {body!r}, not 'ok': {_HINT}"
    return True, f"the control plane at {server} is ready (kubeconfig {path})"
