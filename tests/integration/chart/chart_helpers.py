"""Helpers of the chart's tests (fixtures are in conftest.py).

- `Helm`: the helm binary that `make helm` builds, with `template`/`lint` on the chart and the
  release commands the install tests use (always with an explicit kubeconfig);
- `objects`/`one`: the objects of a rendering, by kind.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # plain `pytest` does not put the checkout on sys.path
    sys.path.insert(0, str(REPO))

from tools.render_manifests import CHART, NAMESPACE, RELEASE, helm_path, split_documents  # noqa: E402

__all__ = ["CHART", "NAMESPACE", "RELEASE", "REPO", "Helm", "Rendering", "helm_path", "one"]


@dataclass
class Rendering:
    """What `helm template` printed, and its objects."""

    text: str
    objects: list[dict[str, Any]]

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]


def one(rendering: Rendering, kind: str) -> dict[str, Any]:
    found = rendering.kinds(kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}: {[o['metadata'] for o in found]}"
    return found[0]


@dataclass
class Helm:
    binary: Path

    def run(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{done.stdout}"
            )
        return done

    def template(
        self, *, values: Sequence[str] = (), api_versions: Sequence[str] = (), release: str = RELEASE
    ) -> Rendering:
        """`helm template <release> <chart> -n rwscaler-system` with `--set` values."""
        args = ["template", release, str(CHART), "--namespace", NAMESPACE]
        for value in values:
            args += ["--set", value]
        for api in api_versions:
            args += ["--api-versions", api]
        text = self.run(*args).stdout
        return Rendering(text, [yaml.safe_load(doc) for doc in split_documents(text)])
