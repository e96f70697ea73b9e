"""A small asyncio client for the Kubernetes API: JSON in, plain dicts out, errors as KubeApiError.

Used by `KubeCluster` and `EndpointSliceRouter`. The connection settings (server, CA, client
certificate, bearer token and its refresh) come from `rwscaler.kube.config` (a kubeconfig or the
in-cluster service account); the requests go through httpx so that a tick never blocks the
operator's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from rwscaler.http_exchange import Exchanges
from rwscaler.kube.config import ClientCertificate, KubeConfig, KubeConfigError, load_config

__all__ = ["KubeApiError", "KubeClient", "KubeConfig", "KubeConfigError", "load_config"]

MERGE_PATCH = "application/merge-patch+json"
DEFAULT_TIMEOUT_SECONDS = 10.0
# Requests in flight at once, per client. httpx keeps 20 connections alive out of a pool of 100;
# 1,000 ticks starting together queued on that pool and timed out (PoolTimeout) while the API
# server answered 429. Waiting here has no timeout, and the requests that run reuse kept-alive
# connections. The limit is on API requests, not on ticks: a tick waiting for a slow Prometheus
# holds no slot.
MAX_IN_FLIGHT = 16
# A request is cut this long after it got its slot: the timeout above bounds each wait (connect,
# each read, ...), so a server sending a byte now and then could otherwise hold a request, its
# connection and its slot for ever. A minute is six of those waits; no request here streams (no
# watch: every answer is read whole).
REQUEST_CUT_SECONDS = 60.0


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

    @property
    def unavailable(self) -> bool:
        """The API server could not be reached, or is overloaded or failing (not the request's fault)."""
        return self.status in {0, 429} or self.status >= 500


@contextlib.contextmanager
def _pem_files(cert: ClientCertificate) -> Iterator[tuple[str, str]]:
    """The certificate and key as files: the kubeconfig's own, or the data written to a private
    temporary directory (0700, files 0600) that is removed as soon as they are loaded."""
    if cert.cert_file and cert.key_file:
        yield cert.cert_file, cert.key_file
        return
    with tempfile.TemporaryDirectory(prefix="rwscaler-tls-") as tmp:
        paths = []
        for name, path, data in (
            ("client.crt", cert.cert_file, cert.cert_data),
            ("client.key", cert.key_file, cert.key_data),
        ):
            if path:
                paths.append(path)
                continue
            target = Path(tmp) / name
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data or b"")
            paths.append(str(target))
        yield paths[0], paths[1]


def ssl_context(cfg: KubeConfig) -> ssl.SSLContext:
    """The TLS settings of a connection: the CA (file or data), the client certificate, or none of
    the server's checks with `insecure-skip-tls-verify`. May run an exec plugin (client certificates)."""
    try:
        context = ssl.create_default_context(
            cafile=cfg.ca_file, cadata=cfg.ca_data.decode() if cfg.ca_data else None
        )
    except (OSError, ssl.SSLError, UnicodeDecodeError) as err:
        raise KubeConfigError(f"{cfg.origin}: cannot load the certificate authority: {err}") from None
    if cfg.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert = cfg.client_certificate()
    if cert is not None:
        try:
            with _pem_files(cert) as (cert_path, key_path):
                context.load_cert_chain(cert_path, key_path)
        except (OSError, ssl.SSLError) as err:
            raise KubeConfigError(
                f"{cfg.origin}: cannot load the client certificate and key: {err}"
            ) from None
    return context


class KubeClient:
    def __init__(self, cfg: KubeConfig, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._cfg = cfg
        self._http = httpx.AsyncClient(
            base_url=cfg.server.rstrip("/"),
            verify=ssl_context(cfg),
            timeout=timeout,
            trust_env=False,
            proxy=cfg.proxy_url,
        )
        # `tls-server-name`: the name the server's certificate is checked against (and SNI).
        self._extensions = {"sni_hostname": cfg.tls_server_name} if cfg.tls_server_name else None
        # The slot of a request is held until its exchange ends, even one its caller abandoned.
        self._exchanges = Exchanges(self._http, asyncio.Semaphore(MAX_IN_FLIGHT))

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, context: str | None = None) -> KubeClient:
        return cls(load_config(kubeconfig, context))

    @property
    def server(self) -> str:
        return self._cfg.server

    @property
    def config(self) -> KubeConfig:
        return self._cfg

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        # An expiring token (exec plugins, projected SA tokens) is refreshed here; that may run a
        # command or read a file, so it runs off the event loop.
        auth = await asyncio.to_thread(self._cfg.authorization)
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
        try:
            headers = await self._headers(content_type)
        except KubeConfigError as err:  # the token file vanished, the exec plugin failed, ...
            raise KubeApiError(0, "NoCredentials", f"{method} {path}: {err}") from err
        try:
            request = self._http.build_request(
                method, path, json=body, params=params, headers=headers, extensions=self._extensions
            )
            # A cancelled caller (a tick stopped with its workload) only stops waiting: its
            # cancellation never reaches the exchange, since a cancelled httpx request can lose its
            # pooled connection for ever (rwscaler.http_exchange).
            response = await self._exchanges.send(request, wait=None, cut_after=REQUEST_CUT_SECONDS)
        except httpx.HTTPError as err:  # a timeout's text is empty: its type says what happened
            raise KubeApiError(
                0, "Unreachable", f"{method} {path}: {str(err) or type(err).__name__}"
            ) from err
        if response.status_code == 401:
            # A refused token is not asked for again: the next request fetches a fresh one.
            self._cfg.invalidate()
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
        await self._exchanges.aclose()
