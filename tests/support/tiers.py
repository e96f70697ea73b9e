"""The one way a test says "this tier cannot run here": `need(ok, reason)`.

Every test that depends on a binary or a running part (the local control plane, PostgreSQL,
MariaDB, Prometheus, podman, helm, the operator image) calls `need` instead of `pytest.skip`.
Without `RWSCALER_REQUIRE_ALL_TIERS=1` a missing part skips the test with `reason`, which names
the make target that installs or starts it. With it (the README's `make test` and `.ci/run` set
it) the same call fails the test: there, every part is installed, so a skip would mean a tier
silently did not run. `tests/conftest.py` also counts xfail/xpass as failures under the setting,
and `tests/unit/test_skip_policy.py` checks that no test calls `pytest.skip` directly.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_ALL_ENV = "RWSCALER_REQUIRE_ALL_TIERS"


def require_all() -> bool:
    """True when nothing may skip (CI and the README's test command)."""
    return os.environ.get(REQUIRE_ALL_ENV) == "1"


def need(ok: bool, reason: str) -> None:
    """Go on when `ok`; otherwise skip with `reason`, or fail with it when nothing may skip."""
    if ok:
        return
    if require_all():
        pytest.fail(f"{REQUIRE_ALL_ENV}=1 and {reason}", pytrace=False)
    pytest.skip(reason)
