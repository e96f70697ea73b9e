"""A small asyncio client for the Kubernetes API: JSON in, plain dicts out, errors as KubeApiError.

Used by `KubeCluster` and `EndpointSliceRouter`. The connection settings (server, CA, client
certificate, bearer token and its refresh) come from the `kubernetes` package's own kubeconfig
and in-cluster loaders, so every authentication a kubeconfig can express works; the requests
themselves go through httpx so that a tick never blocks the operator's event loop.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Mapping
from typing import Any

import httpx
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

MERGE_PATCH = "application/merge-patch+json"
DEFAULT_TIMEOUT_SECONDS = 10.0


class KubeApiError(Exception):
    """The API server answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def forbidden(self) -> bool:
        return self.status == 403


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> k8s_client.Configuration:
    """In-cluster settings inside a pod (unless a kubeconfig is named), else the kubeconfig's."""
    cfg = k8s_client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=cfg, persist_config=False
        )
    return cfg


def authorization_header(cfg: k8s_client.Configuration) -> str | None:
    """The `Authorization` value of a loaded configuration (e.g. "Bearer <token>"), if any.

    Since kubernetes 36 the loaders keep a bearer token under `BearerToken`, before that under
    `authorization`; either may hold it. Reading it runs the refresh hook of expiring tokens."""
    value = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    return str(value) if value else None


def _ssl_context(cfg: k8s_client.Configuration) -> ssl.SSLContext | bool:
    if not cfg.verify_ssl:
        return False
    context = (
        ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        if cfg.ssl_ca_cert
        else ssl.create_default_context()
    )
    if cfg.cert_file and cfg.key_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    return context


class KubeClient:
    def __init__(self, cfg: k8s_client.Configuration, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._cfg = cfg
        self._http = httpx.AsyncClient(
            base_url=cfg.host.rstrip("/"), verify=_ssl_context(cfg), timeout=timeout, trust_env=False
        )

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, context: str | None = None) -> KubeClient:
        return cls(load_configuration(kubeconfig, context))

    @property
    def server(self) -> str:
        return str(self._cfg.host)

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        # The loaders' hook refreshes an expiring token (exec plugins, projected SA tokens); it
        # may run a command or read a file, so it runs off the event loop.
        auth = await asyncio.to_thread(authorization_header, self._cfg)
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = auth
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        if body is not None and content_type is None:
            content_type = "application/json"
        headers = await self._headers(content_type)
        try:
            response = await self._http.request(method, path, json=body, params=params, headers=headers)
        except httpx.HTTPError as err:
            raise KubeApiError(0, "Unreachable", f"{method} {path}: {err}") from err
        if response.status_code >= 400:
            try:
                data = response.json()
            except ValueError:
                data = {}
            message = data.get("message") if isinstance(data, dict) else None
            reason = data.get("reason") if isinstance(data, dict) else None
            raise KubeApiError(
                response.status_code, str(reason or response.reason_phrase), str(message or response.text)
            )
        if not response.content:
            return {}
        data = response.json()
        return data if isinstance(data, dict) else {}

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """The object at `path`, or None when it does not exist."""
        try:
            return await self.request("GET", path, params=params)
        except KubeApiError as err:
            if err.not_found:
                return None
            raise

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=body)

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    async def close(self) -> None:
        await self._http.aclose()
