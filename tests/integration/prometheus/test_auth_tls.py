"""Prometheus over TLS (a real Prometheus with --web.config.file) and the bearer token.

- TLS verification is on by default: a certificate from an unknown CA is unreachable.
- The CA bundle from the WorkloadQuery (the operator read it from spec.prometheus.caSecret)
  makes it verify; insecureSkipVerify skips verification.
- The bearer token (spec.prometheus.bearerTokenSecret) is sent as `Authorization: Bearer ...`
  and never appears in a message. Prometheus itself cannot check bearer tokens (its web config
  knows basic auth only), so a loopback HTTP server that records the header stands in for the
  proxy that usually does.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prom_helpers import custom_metrics, require_prometheus, workload
from tests.support.ports import free_port, wait_listening
from tests.support.procs import ManagedProcess
from tests.support.prometheus import prometheus_binary

from rwscaler.core.observation import UnknownReason
from rwscaler.metrics.client import Endpoint
from rwscaler.metrics.prometheus import PrometheusMetricsSource
from rwscaler.metrics.source import MetricsReading, WorkloadQuery

pytestmark = pytest.mark.timeout(120)

ONE = {q: "vector(1)" for q in ("readQPS", "writeQPS", "readLatencyP99", "writeLatencyP99")}


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A Prometheus serving HTTPS with a certificate for 127.0.0.1 from a throwaway CA."""
    require_prometheus()
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates (Debian package openssl)")
    work = tmp_path_factory.mktemp("tls-prometheus")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "1", "-subj", "/CN=rwscaler test CA", cwd=work)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=work)  # fmt: skip
    (work / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "1", "-extfile", "san.ext", cwd=work)  # fmt: skip
    (work / "web.yml").write_text(
        json.dumps(
            {
                "tls_server_config": {
                    "cert_file": str(work / "server.crt"),
                    "key_file": str(work / "server.key"),
                }
            }
        )
    )
    (work / "prometheus.yml").write_text(json.dumps({"global": {"scrape_interval": "1s"}}))
    port = free_port()
    binary = prometheus_binary()
    assert binary is not None
    proc = ManagedProcess(
        "prometheus-tls",
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={work / 'web.yml'}",
            "--log.level=warn",
        ],
        log_path=work / "prometheus.log",
    )
    proc.start()
    try:
        if not wait_listening(port, timeout=60):
            pytest.fail(f"TLS Prometheus did not listen:\n{proc.log_tail()}")
        yield f"https://127.0.0.1:{port}", (work / "ca.crt").read_text()
    finally:
        proc.stop()


async def read_until_ready(q: WorkloadQuery, want_known: bool) -> MetricsReading:
    """Prometheus listens before its query engine is up: retry briefly while it answers 503."""
    deadline = time.monotonic() + 30
    while True:
        source = PrometheusMetricsSource()
        try:
            reading = (await source.read([q], time.time()))[q.key]
        finally:
            await source.close()
        starting = reading.read_qps.reason is UnknownReason.HTTP_ERROR and "503" in reading.read_qps.message
        if not starting or time.monotonic() > deadline:
            if want_known:
                assert reading.read_qps.value == 1.0, reading.read_qps
            return reading
        await asyncio.sleep(0.5)


async def test_verification_is_on_by_default(tls_prometheus: tuple[str, str]) -> None:
    url, _ = tls_prometheus
    reading = await read_until_ready(workload(url, custom_metrics(**ONE)), want_known=False)
    assert reading.read_qps.reason is UnknownReason.UNREACHABLE, reading.read_qps
    assert (
        "CERTIFICATE_VERIFY_FAILED" in reading.read_qps.message or "certificate" in reading.read_qps.message
    )


async def test_the_ca_bundle_verifies(tls_prometheus: tuple[str, str]) -> None:
    url, ca = tls_prometheus
    await read_until_ready(workload(url, custom_metrics(**ONE), ca_pem=ca), want_known=True)


async def test_insecure_skip_verify_is_honored(tls_prometheus: tuple[str, str]) -> None:
    url, _ = tls_prometheus
    q = workload(url, custom_metrics(**ONE), prometheus={"insecureSkipVerify": True})
    await read_until_ready(q, want_known=True)


async def test_a_broken_ca_bundle_is_reported_not_raised(tls_prometheus: tuple[str, str]) -> None:
    url, _ = tls_prometheus
    q = workload(url, custom_metrics(**ONE), ca_pem="-----BEGIN CERTIFICATE-----\nnot a certificate\n")
    source = PrometheusMetricsSource()
    try:
        reading = (await source.read([q], time.time()))[q.key]
    finally:
        await source.close()
    assert reading.read_qps.reason is UnknownReason.UNREACHABLE and "CA bundle" in reading.read_qps.message


@pytest.fixture
def recording_server() -> Iterator[tuple[str, list[str]]]:
    """Answers every query with an empty vector and records the Authorization headers."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append(self.headers.get("Authorization", ""))
            body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


async def test_bearer_token_is_sent_and_never_shown(recording_server: tuple[str, list[str]]) -> None:
    url, seen = recording_server
    token = "s3cr3t-token-value"
    q = workload(url, custom_metrics(), bearer_token=token)
    source = PrometheusMetricsSource()
    try:
        reading = (await source.read([q], time.time()))[q.key]
    finally:
        await source.close()
    assert seen and set(seen) == {f"Bearer {token}"}
    # Nothing came back: unknown, and no message or repr carries the token.
    assert reading.read_qps.reason is UnknownReason.EMPTY
    texts = [reading.read_qps.message, *(s.message for s in reading.replica_lag.values())]
    assert all(token not in text for text in texts)
    assert token not in repr(Endpoint(url, token))
