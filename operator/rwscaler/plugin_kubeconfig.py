"""Which namespace and API server `kubectl rwscaler` talks to, read from the user's kubeconfig.

Called by `rwscaler.command_plugin` before it opens a `KubeClient` (which does the connecting and
authenticating itself): the client needs no namespace, but a plugin must default to the context's
namespace as kubectl does. The kubeconfig is found as kubectl finds it: `--kubeconfig FILE`, else
the files listed in `$KUBECONFIG` (merged: the first file that sets `current-context` wins, and
the first definition of a context or cluster wins), else `~/.kube/config`. The context is
`--context NAME`, else `current-context`. Without any kubeconfig, inside a pod, the namespace is
the ServiceAccount's. The namespace falls back to `default`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_NAMESPACE = "default"
IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class KubeconfigError(Exception):
    """The kubeconfig cannot be used as asked (a file or context that does not exist)."""


@dataclass(frozen=True, slots=True)
class ContextInfo:
    context: str | None  # the context's name (None: no kubeconfig, in-cluster or nothing)
    namespace: str
    server: str | None


def kubeconfig_files(explicit: str | None, env: Mapping[str, str], home: Path) -> list[Path]:
    """The kubeconfig files kubectl would read, in precedence order."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise KubeconfigError(f"kubeconfig {explicit} does not exist")
        return [path]
    listed = env.get("KUBECONFIG", "")
    if listed:
        return [
            Path(p).expanduser() for p in listed.split(os.pathsep) if p and Path(p).expanduser().is_file()
        ]
    default = home / ".kube" / "config"
    return [default] if default.is_file() else []


def _load(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {err}") from err
    return data if isinstance(data, Mapping) else {}


def _named(configs: list[Mapping[str, Any]], section: str, name: str) -> Mapping[str, Any] | None:
    """The first definition of `name` in `section` (contexts, clusters) across the files."""
    for config in configs:
        for item in config.get(section) or []:
            if isinstance(item, Mapping) and item.get("name") == name:
                body = item.get(section[:-1])
                return body if isinstance(body, Mapping) else {}
    return None


def context_info(
    kubeconfig: str | None,
    context: str | None,
    *,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> ContextInfo:
    """The context to use, its namespace (or `default`) and its API server."""
    env = os.environ if env is None else env
    files = kubeconfig_files(kubeconfig, env, Path.home() if home is None else home)
    if not files:
        if context:
            raise KubeconfigError(f'context "{context}" does not exist (no kubeconfig found)')
        namespace = DEFAULT_NAMESPACE
        if env.get("KUBERNETES_SERVICE_HOST") and IN_CLUSTER_NAMESPACE_FILE.is_file():
            namespace = IN_CLUSTER_NAMESPACE_FILE.read_text().strip() or DEFAULT_NAMESPACE
        return ContextInfo(None, namespace, None)
    configs = [_load(p) for p in files]
    name = context or next((str(c["current-context"]) for c in configs if c.get("current-context")), None)
    if name is None:
        return ContextInfo(None, DEFAULT_NAMESPACE, None)
    body = _named(configs, "contexts", name)
    if body is None:
        where = ", ".join(str(p) for p in files)
        raise KubeconfigError(f'context "{name}" does not exist in {where}')
    cluster = _named(configs, "clusters", str(body.get("cluster", ""))) or {}
    server = cluster.get("server")
    return ContextInfo(
        name,
        str(body.get("namespace") or DEFAULT_NAMESPACE),
        str(server) if server else None,
    )
