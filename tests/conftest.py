"""Suite-wide pytest settings.

With RWSCALER_REQUIRE_ALL_TIERS=1 (set by .ci/run) a test that skipped fails the run: in CI
every binary is installed, so a skip means a tier silently did not run.
"""

from __future__ import annotations

import os

import pytest

_REQUIRE_ALL = os.environ.get("RWSCALER_REQUIRE_ALL_TIERS") == "1"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _REQUIRE_ALL:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        reporter.write_line(
            f"RWSCALER_REQUIRE_ALL_TIERS=1: {len(skipped)} test(s) skipped; in CI nothing may skip:", red=True
        )
        for rep in skipped[:20]:
            reporter.write_line(
                f"  {rep.nodeid}: {rep.longrepr[-1] if isinstance(rep.longrepr, tuple) else rep.longrepr}"
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
