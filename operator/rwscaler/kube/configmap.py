"""The PgBouncer `[databases]` key of a ConfigMap: read it, and write it only when it changed.

Used by the reconcile loop as the `ConfigStore` of `rwscaler.pooler.pgbouncer_apply.PgBouncerRouter`
(it satisfies that Protocol structurally; `kube` and `pooler` do not import each other). rwscaler
owns exactly one key of the ConfigMap (`spec.pooler.pgbouncer.configKey`) and one annotation
recording that key's hash; every other key (typically the user's `pgbouncer.ini`, which
`%include`s this one) is left alone: the write is a strategic-merge patch of that key only.
The ConfigMap itself is the user's: rwscaler never creates or deletes it.

The kubernetes client is synchronous; calls run in a worker thread so the operator's event loop
is never blocked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

HASH_ANNOTATION = "rwscaler.io/pgbouncer-databases-hash"


class ConfigMapError(Exception):
    """The ConfigMap could not be read or written; the message is fit for status."""


def _describe(e: ApiException, verb: str, namespace: str, name: str) -> ConfigMapError:
    if e.status == 404:
        return ConfigMapError(
            f"ConfigMap {namespace}/{name} not found (create it; rwscaler only writes a key)"
        )
    if e.status == 403:
        return ConfigMapError(f"forbidden to {verb} ConfigMap {namespace}/{name} (check the operator's RBAC)")
    return ConfigMapError(f"{verb} ConfigMap {namespace}/{name}: HTTP {e.status} {e.reason}")


def read_config_key(api: CoreV1Api, namespace: str, name: str, key: str) -> str | None:
    """The key's text, None when the key is absent; ConfigMapError when the ConfigMap is not readable."""
    try:
        cm: Any = api.read_namespaced_config_map(name, namespace)
    except ApiException as e:
        raise _describe(e, "read", namespace, name) from e
    data = cm.data or {}
    value = data.get(key)
    return value if isinstance(value, str) else None


def write_config_key(api: CoreV1Api, namespace: str, name: str, key: str, text: str, text_hash: str) -> None:
    """Set the key (and the hash annotation), leaving every other key of the ConfigMap as it is."""
    body = {"metadata": {"annotations": {HASH_ANNOTATION: text_hash}}, "data": {key: text}}
    try:
        api.patch_namespaced_config_map(name, namespace, body)
    except ApiException as e:
        raise _describe(e, "patch", namespace, name) from e


class ConfigMapStore:
    """A `ConfigStore` on one ConfigMap key (spec.pooler.pgbouncer.configMap / configKey)."""

    def __init__(self, api: CoreV1Api, namespace: str, name: str, key: str) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.key = key

    async def read(self) -> str | None:
        return await asyncio.to_thread(read_config_key, self.api, self.namespace, self.name, self.key)

    async def write(self, text: str, text_hash: str) -> None:
        await asyncio.to_thread(
            write_config_key, self.api, self.namespace, self.name, self.key, text, text_hash
        )
