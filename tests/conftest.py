"""Suite-wide pytest settings.

- With RWSCALER_REQUIRE_ALL_TIERS=1 (the README's `make test` and `.ci/run` set it) nothing may
  skip: `tests.support.tiers.need` fails instead of skipping, and here any test that still
  skipped, xfailed or xpassed fails the run, since each means a check silently did not run as
  written.
- Figures the tests measured (`tests.support.figures.record`) are printed in the terminal
  summary.
"""

from __future__ import annotations

import pytest
from tests.support.figures import FIGURES
from tests.support.tiers import REQUIRE_ALL_ENV, require_all

_NOT_RUN_AS_WRITTEN = ("skipped", "xfailed", "xpassed")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("figures measured by the tests")
        for name, value in FIGURES:
            terminalreporter.write_line(f"{name}: {value}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not require_all():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    offenders = [(kind, rep) for kind in _NOT_RUN_AS_WRITTEN for rep in reporter.stats.get(kind, [])]
    if not offenders:
        return
    reporter.write_line(
        f"{REQUIRE_ALL_ENV}=1: {len(offenders)} test(s) skipped, xfailed or xpassed; here every test "
        "must run and pass as written:",
        red=True,
    )
    for kind, rep in offenders[:20]:
        why = rep.longrepr[-1] if isinstance(rep.longrepr, tuple) else getattr(rep, "wasxfail", rep.longrepr)
        reporter.write_line(f"  {kind}: {rep.nodeid}: {why}")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
