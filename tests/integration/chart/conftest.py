"""Fixtures of the chart's tests (manifests/charts/rwscaler, docs/chart.md).

- `helm` (session): the helm binary `make helm` builds; a test that needs it skips (or fails
  under RWSCALER_REQUIRE_ALL_TIERS=1) naming `make helm` when it is missing.
- Tests in test_chart_install.py also need the local control plane (`make cluster`) and are
  marked `cluster`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_helpers import Helm, helm_path
from tests.support.tiers import need

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.path)).resolve() == _HERE / "test_chart_install.py":
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.timeout(420))


@pytest.fixture(scope="session")
def helm() -> Helm:
    path = helm_path()
    need(path.is_file(), f"no helm binary at {path}: run `make helm` (builds it from Go modules)")
    return Helm(path)
