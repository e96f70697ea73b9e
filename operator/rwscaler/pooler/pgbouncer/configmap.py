"""The PgBouncer `[databases]` key of a ConfigMap: read it, and write it only when it changed.

`ConfigMapStore` is the `ConfigStore` of `apply.PgBouncerRouter` in the operator, handed out by
`access.KubePgBouncerAccess.store` (it satisfies that Protocol structurally, so `apply` stays free
of Kubernetes).
rwscaler owns exactly one key of the ConfigMap (`spec.pooler.pgbouncer.configKey`) and one
annotation recording that key's hash. Every other key (typically the user's `pgbouncer.ini`, which
`%include`s this one) is left alone: the write is a JSON merge patch of that key only, which
merges into `data` key by key. The ConfigMap itself is the user's: rwscaler never creates or
deletes it, so a missing ConfigMap is an error for status, not something to paper over.
"""

from __future__ import annotations

from rwscaler.kube.client import KubeApiError, KubeClient

HASH_ANNOTATION = "rwscaler.io/pgbouncer-databases-hash"


class ConfigMapError(Exception):
    """The ConfigMap could not be read or written; the message is fit for status."""


def configmap_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def _describe(err: KubeApiError, verb: str, namespace: str, name: str) -> ConfigMapError:
    where = f"ConfigMap {namespace}/{name}"
    if err.not_found:
        return ConfigMapError(f"{where} not found: create it (rwscaler only writes one key of it)")
    if err.forbidden:
        return ConfigMapError(f"forbidden to {verb} {where}: check the operator's RBAC")
    return ConfigMapError(f"{verb} {where}: {err}")


async def read_config_key(client: KubeClient, namespace: str, name: str, key: str) -> str | None:
    """The key's text, None when the key is absent; ConfigMapError when the ConfigMap is not readable."""
    try:
        cm = await client.get(configmap_path(namespace, name))
    except KubeApiError as err:
        raise _describe(err, "read", namespace, name) from err
    if cm is None:
        raise ConfigMapError(
            f"ConfigMap {namespace}/{name} not found: create it (rwscaler only writes one key of it)"
        )
    value = (cm.get("data") or {}).get(key)
    return value if isinstance(value, str) else None


async def write_config_key(
    client: KubeClient, namespace: str, name: str, key: str, text: str, text_hash: str
) -> None:
    """Set the key (and the hash annotation), leaving every other key of the ConfigMap as it is."""
    patch = {"metadata": {"annotations": {HASH_ANNOTATION: text_hash}}, "data": {key: text}}
    try:
        await client.merge_patch(configmap_path(namespace, name), patch)
    except KubeApiError as err:
        raise _describe(err, "patch", namespace, name) from err


class ConfigMapStore:
    """A `ConfigStore` on one ConfigMap key (spec.pooler.pgbouncer.configMap / configKey)."""

    def __init__(self, client: KubeClient, namespace: str, name: str, key: str) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.key = key

    async def read(self) -> str | None:
        return await read_config_key(self.client, self.namespace, self.name, self.key)

    async def write(self, text: str, text_hash: str) -> None:
        await write_config_key(self.client, self.namespace, self.name, self.key, text, text_hash)
