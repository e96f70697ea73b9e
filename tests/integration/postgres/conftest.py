"""Fixtures for the tests that run against a real PostgreSQL setup (tests/support/pgenv.py).

- ``pgenv`` (session): one running :class:`~tests.support.pgenv.PgEnv` shared by every
  test in this folder: a primary ``orders-pg-0``, replicas ``orders-pg-replica-0/1``,
  PgBouncer (``orders`` / ``orders_ro``), the exporters and Prometheus. It skips, naming
  ``make pgenv-deps``, when the binaries are missing (``RWSCALER_REQUIRE_ALL_TIERS=1``,
  set by `make test` and CI, fails instead: tests/support/tiers.py).
- ``clean_pgenv`` (function): the same object, reset to its initial state before and
  after the test (:meth:`PgEnv.reset`; a few milliseconds when nothing changed). Use it
  in tests that pause replay, rewrite PgBouncer's config, add or remove replicas, or
  stop a process, and in tests that need the initial state.

- ``plane``, ``ns``, ``operator``: the control plane, a namespace and the operator for the two
  failover tests (defined in failover_helpers.py).

Every test collected from this folder is marked ``postgres``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.tiers import need

_REPO = Path(__file__).resolve().parents[3]
if str(_REPO) not in sys.path:  # plain `pytest` (not `python -m pytest`) does not add the checkout
    sys.path.insert(0, str(_REPO))

# The failover tests' fixtures (the control plane, a namespace, the operator): failover_helpers.py.
from failover_helpers import ns, operator, plane  # noqa: E402, F401
from tests.support.pgenv import PgEnv, pgenv_available  # noqa: E402

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def pgenv() -> Iterator[PgEnv]:
    need(*pgenv_available())
    with PgEnv(replicas=2) as env:
        yield env


@pytest.fixture
def clean_pgenv(pgenv: PgEnv) -> Iterator[PgEnv]:
    pgenv.reset()
    yield pgenv
    pgenv.reset()
