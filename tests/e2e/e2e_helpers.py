"""Helpers of the end-to-end tier (fixtures are in conftest.py): where the chart is installed,
the operator as deployed (`Deployed`: its liveness endpoint, its log, a command inside its
container)."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.integration.cluster.cluster_helpers import Kube, kubectl_binary
from tests.support.exporter import ControlledExporter
from tests.support.image import PODMAN
from tests.support.procs import ManagedProcess
from tests.support.prometheus import PrometheusServer

REPO = Path(__file__).resolve().parents[2]
TARGET = os.environ.get("RWSCALER_E2E_TARGET", "local")  # local | kind
RELEASE = "rwscaler-e2e"
NAMESPACE = "rwscaler-e2e"
# The database pods: kwok runs nothing, so any image does; kind runs them, so one that stays up.
DB_IMAGE = "postgres:15" if TARGET == "local" else "registry.k8s.io/pause:3.10"


@dataclass
class MetricsEnv:
    """The test's exporter, the Prometheus scraping it, and its URL as the operator reaches it."""

    exporter: ControlledExporter
    prometheus: PrometheusServer
    url: str


@dataclass
class Deployed:
    """The operator as installed: how to reach its liveness endpoint and read its log."""

    kube: Kube
    serviceaccount: str
    container: str | None  # podman container name (local target)
    process: ManagedProcess | None
    liveness_url: str | None
    metrics_url: str | None = None  # the operator's own /metrics (the chart's metrics port)

    def log_tail(self, lines: int = 60) -> str:
        if self.process is not None:
            return self.process.log_tail(lines)
        return self.kube.kubectl("-n", NAMESPACE, "logs", f"deploy/{RELEASE}", f"--tail={lines}")

    def exec(self, *command: str) -> tuple[int, str]:
        """Run a command inside the operator's container: (exit code, stdout + stderr)."""
        if self.container is not None:
            argv = [*PODMAN, "exec", self.container, *command]
        else:
            argv = [kubectl_binary(), "--kubeconfig", str(self.kube.kubeconfig), "-n", NAMESPACE]
            argv += ["exec", f"deploy/{RELEASE}", "--", *command]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        return done.returncode, done.stdout + done.stderr

    def metrics(self) -> str:
        """The operator's /metrics page (docs/operator-metrics.md)."""
        if self.metrics_url is not None:
            with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
                return str(response.read().decode())
        code = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8081/metrics').read().decode())"
        return self.kube.kubectl("-n", NAMESPACE, "exec", f"deploy/{RELEASE}", "--", "python3", "-c", code)

    def liveness(self) -> int:
        """The HTTP status of the operator's liveness endpoint."""
        if self.liveness_url is not None:
            with urllib.request.urlopen(self.liveness_url, timeout=5) as response:
                return int(response.status)
        # kind: ask from inside the pod (the image has python3, not curl)
        code = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/healthz').status)"
        out = self.kube.kubectl("-n", NAMESPACE, "exec", f"deploy/{RELEASE}", "--", "python3", "-c", code)
        return int(out.strip())
