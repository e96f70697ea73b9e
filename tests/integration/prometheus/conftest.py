"""Fixtures for the observation layer against a real Prometheus scraping a ControlledExporter.

- ``prom_env`` (module): one ``ControlledExporter`` and one Debian Prometheus scraping it every
  0.5 s. The exporter's series carry their own ``namespace`` and ``pod`` labels (the target has
  none, so Prometheus keeps them as they are).
- ``env`` (function): the same, with the exporter cleared and behaving normally.

Skips with the make target that installs Prometheus when the binary is missing
(``RWSCALER_REQUIRE_ALL_TIERS=1`` makes that a failure, as in `make test` and CI; see tests/support/tiers.py). Every test here is marked
``prometheus``. Helpers (``workload``, ``custom_metrics``, ...) are in prom_helpers.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prom_helpers import SCRAPE_S, ControlledExporter, PromEnv, PrometheusServer, require_prometheus

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.prometheus)


@pytest.fixture(scope="module")
def prom_env() -> Iterator[PromEnv]:
    require_prometheus()
    with (
        ControlledExporter() as exporter,
        PrometheusServer([exporter.target("app")], scrape_interval=SCRAPE_S) as prom,
    ):
        prom.wait_for_targets()
        yield PromEnv(exporter, prom)


@pytest.fixture
def env(prom_env: PromEnv) -> Iterator[PromEnv]:
    prom_env.exporter.clear()
    prom_env.exporter.fail_with(None)
    prom_env.exporter.delay = 0.0
    yield prom_env
    prom_env.exporter.fail_with(None)
    prom_env.exporter.delay = 0.0
