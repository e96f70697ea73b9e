"""The README's install section, run as it is written, on the local control plane.

The block after the `<!-- readme-test: local-install -->` marker in README.md runs line by line
in one `bash -euo pipefail`, from the checkout, with the caller's environment minus `KUBECONFIG`
(the README exports its own) and with no virtualenv on `PATH`: a reader who follows it has
neither. Then the checks a reader would make: the chart's release is deployed, the image answers
its liveness endpoint, and the operator reported on both examples. With no Prometheus on the
local control plane the README says they report `MetricsAvailable=False`
(`PrometheusUnreachable`), so that is what is expected. The test undoes what the block did.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import REPO, TARGET
from tests.integration.cluster.cluster_helpers import Kube, wait_for
from tests.support.cluster import cluster_available, kubeconfig_path
from tests.support.image import podman_available
from tests.support.tiers import need

README = REPO / "README.md"
MARKER = "<!-- readme-test: local-install"
EXAMPLES = {("shop", "catalog-db"), ("telemetry", "ingest-db")}
LIVENESS = "http://127.0.0.1:18080/healthz"  # where `make image-run` moves the chart's probe


def readme_block() -> str:
    text = README.read_text()
    assert MARKER in text, f"README.md lost its {MARKER} marker"
    after = text[text.index(MARKER) :]
    match = re.search(r"```[a-z]*\n(.*?)```", after, re.S)
    assert match is not None, "no code block after the marker"
    return match.group(1)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"KUBECONFIG", "VIRTUAL_ENV"}}
    venv_bin = str(REPO / ".venv" / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


def _sh(script: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _undo() -> None:
    _sh(
        'export KUBECONFIG="$(make -s cluster-kubeconfig)"; export PATH="$(make -s tools-path):$PATH"\n'
        "make -s image-stop || true\n"
        "helm uninstall rwscaler -n rwscaler-system --wait || true\n"
        # wait: a namespace still terminating would refuse the next install into it
        "kubectl delete ns shop telemetry rwscaler-system --ignore-not-found --wait --timeout=180s\n",
        timeout=300,
    )


@pytest.fixture
def readme_install() -> Iterator[subprocess.CompletedProcess[str]]:
    need(TARGET == "local", "the README's local block is for the local control plane only")
    need(*cluster_available())
    need(*podman_available())
    kube = Kube(kubeconfig_path())
    # A reader starts from a plane without rwscaler on it; another test's leftovers would make
    # `helm install` refuse, so say so rather than fail obscurely.
    leftover = kube.kubectl("get", "clusterrole", "rwscaler", "--ignore-not-found", "-o", "name").strip()
    assert not leftover, "clusterrole/rwscaler already exists: something left an rwscaler install behind"
    # Namespaces of an earlier run still terminating would refuse the install into them.
    kube.kubectl("wait", "--for=delete", "ns/shop", "ns/telemetry", "ns/rwscaler-system", "--timeout=180s")
    try:
        yield _sh(readme_block())
    finally:
        _undo()


def test_the_readme_install_section_works_as_written(
    readme_install: subprocess.CompletedProcess[str],
) -> None:
    done = readme_install
    assert done.returncode == 0, f"the README block failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    kube = Kube(kubeconfig_path())
    assert "deployed" in kube.kubectl(
        "-n",
        "rwscaler-system",
        "get",
        "secret",
        "-l",
        "owner=helm",
        "-o",
        "jsonpath={.items[*].metadata.labels.status}",
    )
    with urllib.request.urlopen(LIVENESS, timeout=5) as response:
        assert response.status == 200

    def conditions() -> dict[tuple[str, str], dict[str, str]]:
        seen = {}
        for ns, name in EXAMPLES:
            conds = kube.status(ns, name).get("conditions") or []
            seen[(ns, name)] = {c["type"]: f"{c['status']}({c['reason']})" for c in conds}
        return seen

    def reported() -> dict[tuple[str, str], dict[str, str]] | None:
        seen = conditions()
        ok = all(s.get("MetricsAvailable") == "False(PrometheusUnreachable)" for s in seen.values())
        return seen if ok else None

    wait_for("both examples reported by the operator", reported, timeout=60, last=conditions)
    # The README's last line printed the table the plugin makes: one row per example.
    table = [line.split() for line in done.stdout.splitlines()]
    rows = {(row[0], row[1]) for row in table if len(row) > 1}
    assert rows >= EXAMPLES, done.stdout


def test_the_readme_block_is_found() -> None:
    block = readme_block()
    assert "helm install rwscaler" in block and "kubectl rwscaler status -A" in block
    assert Path(README).read_text().count(MARKER) == 1
