"""The Kubernetes API calls of `kubectl rwscaler`, and their failures as one readable line.

Called by `rwscaler.command_plugin`, with a `KubeClient` opened on the user's kubeconfig: list
ReadWriteWorkloads (one namespace or all), get one, set or remove the pause annotation with a
merge patch. Every `KubeApiError` becomes a `PluginError` whose message says what failed in the
user's terms: a workload that does not exist, a CRD that is not installed, a verb RBAC denies
(and to whom, when the API server says), an API server that cannot be reached.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rwscaler.core.spec import GROUP, PAUSED_ANNOTATION, PLURAL, VERSION, is_paused
from rwscaler.kube.client import KubeApiError, KubeClient

RESOURCE = f"{PLURAL}.{GROUP}"
KIND_LOWER = "readwriteworkload"

# kube-apiserver's RBAC denial, e.g. `User "system:serviceaccount:a:b" cannot list resource
# "readwriteworkloads" in API group "rwscaler.io" in the namespace "shop"`.
_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) resource "(?P<resource>[^"]*)"'
    r'(?: in API group "(?P<group>[^"]*)")?(?: in the namespace "(?P<namespace>[^"]*)")?'
)


class PluginError(Exception):
    """A failure to show the user as one line (exit code 1)."""


def collection_path(namespace: str | None) -> str:
    """The workloads of one namespace, or of all (None)."""
    if namespace is None:
        return f"/apis/{GROUP}/{VERSION}/{PLURAL}"
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"


def object_path(namespace: str, name: str) -> str:
    return f"{collection_path(namespace)}/{name}"


def _where(namespace: str | None) -> str:
    return f'in namespace "{namespace}"' if namespace else "in any namespace (cluster scope)"


def crd_missing(server: str | None) -> PluginError:
    at = f" at {server}" if server else ""
    return PluginError(
        f"the API server{at} does not serve {RESOURCE}/{VERSION}: is the rwscaler CRD installed? "
        "(kubectl apply -f crds/readwriteworkloads.rwscaler.io.yaml)"
    )


def describe(err: KubeApiError, verb: str, namespace: str | None, server: str | None) -> PluginError:
    """A `KubeApiError` of `verb` on ReadWriteWorkloads in `namespace` as one line."""
    at = f" at {server}" if server else ""
    if err.status == 0:
        detail = err.message.split(": ", 1)[-1] if ": " in err.message else err.message
        if err.reason == "NoCredentials":  # the kubeconfig's token file or exec plugin failed
            return PluginError(f"cannot get credentials for the Kubernetes API server{at}: {detail}")
        return PluginError(f"cannot reach the Kubernetes API server{at}: {detail}")
    if err.status == 401:
        return PluginError(
            f"unauthorized: the API server{at} rejected the kubeconfig's credentials ({err.message})"
        )
    if err.forbidden:
        m = _FORBIDDEN.search(err.message)
        if m:
            resource = m["resource"] + (f".{m['group']}" if m["group"] else "")
            scope = _where(m["namespace"]) if m["namespace"] else "at cluster scope"
            return PluginError(
                f'forbidden: user "{m["user"]}" may not {m["verb"]} {resource} {scope} '
                "(RBAC grants it no such permission)"
            )
        return PluginError(f"forbidden: may not {verb} {RESOURCE} {_where(namespace)}: {err.message}")
    return PluginError(f"{verb} {RESOURCE} {_where(namespace)}: {err.status} {err.reason}: {err.message}")


async def list_workloads(
    client: KubeClient, namespace: str | None, server: str | None
) -> list[dict[str, Any]]:
    """Every ReadWriteWorkload of `namespace` (None: all namespaces)."""
    try:
        data = await client.request("GET", collection_path(namespace))
    except KubeApiError as err:
        if err.not_found:
            raise crd_missing(server) from err
        raise describe(err, "list", namespace, server) from err
    return [item for item in data.get("items") or [] if isinstance(item, dict)]


async def _not_found(client: KubeClient, namespace: str, name: str, server: str | None) -> PluginError:
    """Why a named workload was not there: the object is missing, or the whole resource type is."""
    try:
        await client.request("GET", collection_path(namespace), params={"limit": "1"})
    except KubeApiError as err:
        if err.not_found:
            return crd_missing(server)
        # Cannot list, so cannot tell: say what was asked for.
    return PluginError(f'{KIND_LOWER} "{name}" not found in namespace "{namespace}"')


async def get_workload(client: KubeClient, namespace: str, name: str, server: str | None) -> dict[str, Any]:
    try:
        obj = await client.request("GET", object_path(namespace, name))
    except KubeApiError as err:
        if err.not_found:
            raise await _not_found(client, namespace, name, server) from err
        raise describe(err, "get", namespace, server) from err
    return obj


def pause_patch(paused: bool) -> dict[str, Any]:
    """The merge patch that sets (`"true"`) or removes (null) the pause annotation."""
    return {"metadata": {"annotations": {PAUSED_ANNOTATION: "true" if paused else None}}}


async def set_paused(
    client: KubeClient, namespace: str, name: str, paused: bool, server: str | None
) -> tuple[bool, dict[str, Any]]:
    """Pause or resume; returns whether it was paused before, and the object after."""
    before = await get_workload(client, namespace, name, server)
    try:
        after = await client.merge_patch(object_path(namespace, name), pause_patch(paused))
    except KubeApiError as err:
        if err.not_found:
            raise await _not_found(client, namespace, name, server) from err
        raise describe(err, "patch", namespace, server) from err
    return is_paused(before), after


def spec_mode(obj: Mapping[str, Any]) -> str:
    spec = obj.get("spec")
    mode = spec.get("mode") if isinstance(spec, Mapping) else None
    return str(mode or "Enforce")
