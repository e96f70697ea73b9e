"""The krew manifest (manifests/krew/rwscaler.yaml) parses, installs `kubectl-rwscaler`, says it
needs the Python package, and its shim runs the package's plugin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

KREW = Path(__file__).resolve().parents[2] / "manifests" / "krew"
MANIFEST = KREW / "rwscaler.yaml"
SHIM = KREW / "kubectl-rwscaler"


def _manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(data, dict)
    return data


def test_the_manifest_is_a_krew_plugin_named_rwscaler() -> None:
    m = _manifest()
    assert m["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert m["kind"] == "Plugin"
    assert m["metadata"]["name"] == "rwscaler"
    spec = m["spec"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", spec["version"])
    for key in ("homepage", "shortDescription", "description", "caveats"):
        assert spec[key], key


def test_every_platform_installs_kubectl_rwscaler_from_an_archive() -> None:
    platforms = _manifest()["spec"]["platforms"]
    assert platforms
    for p in platforms:
        assert p["bin"] == "kubectl-rwscaler"
        assert p["selector"]["matchExpressions"] or p["selector"]["matchLabels"]
        assert p["uri"].startswith("https://")
        assert re.fullmatch(r"[0-9a-f]{64}", p["sha256"])
        assert {"from": "kubectl-rwscaler", "to": "."} in p["files"]


def test_it_says_it_needs_the_python_package() -> None:
    spec = _manifest()["spec"]
    assert "pip install rwscaler" in spec["description"]
    assert "pip install rwscaler" in spec["caveats"]


def test_the_shim_runs_the_plugin_of_the_installed_package() -> None:
    env = {**os.environ, "RWSCALER_PYTHON": sys.executable}
    result = subprocess.run(
        [str(SHIM), "--help"], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "kubectl rwscaler" in result.stdout and "pause" in result.stdout


def test_the_shim_says_when_the_package_is_missing() -> None:
    env = {**os.environ, "RWSCALER_PYTHON": "/bin/false"}
    result = subprocess.run(
        [str(SHIM), "status"], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "pip install rwscaler" in result.stderr
