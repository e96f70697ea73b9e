"""The skip policy (tests/support/tiers.py, tests/conftest.py): one way to skip, and under
RWSCALER_REQUIRE_ALL_TIERS=1 nothing skips, xfails or xpasses without failing the run.

The behaviour is checked by running pytest on small test files in a subprocess, with and without
the setting, and reading its exit code and summary.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
HELPER = TESTS / "support" / "tiers.py"


def _direct_skips(path: Path) -> list[str]:
    """`pytest.skip(...)`, `pytest.importorskip(...)`, `pytest.mark.skip[if]`, `pytest.xfail`, `mark.xfail`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in {"skip", "skipif", "importorskip", "xfail"}:
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: .{node.attr}")
    return found


def test_every_skip_goes_through_the_one_helper() -> None:
    offenders = [hit for p in sorted(TESTS.rglob("*.py")) if p != HELPER for hit in _direct_skips(p)]
    assert offenders == [], "skip with tests.support.tiers.need(ok, reason) instead:\n" + "\n".join(offenders)


_CONFTEST = "from tests.conftest import pytest_sessionfinish, pytest_terminal_summary  # noqa: F401\n"
_SAMPLES = {
    "skip": 'from tests.support.tiers import need\n\ndef test_it():\n    need(False, "no frobnicator: run `make frob`")\n',
    "pass": "from tests.support.tiers import need\n\ndef test_it():\n    need(True, 'unused')\n",
    "xfail": "import pytest\n\n@pytest.mark.xfail(reason='known')\ndef test_it():\n    assert False\n",
    "xpass": "import pytest\n\n@pytest.mark.xfail(reason='known')\ndef test_it():\n    assert True\n",
}


def _run(tmp_path: Path, sample: str, *, require_all: bool) -> tuple[int, str]:
    """pytest on one sample file with the suite's hooks; (exit code, output)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(_CONFTEST)
    (tmp_path / "test_sample.py").write_text(_SAMPLES[sample])
    env = {k: v for k, v in os.environ.items() if k != "RWSCALER_REQUIRE_ALL_TIERS"}
    env["PYTHONPATH"] = str(REPO)
    if require_all:
        env["RWSCALER_REQUIRE_ALL_TIERS"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "test_sample.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_a_missing_part_skips_naming_the_make_target(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "skip", require_all=False)
    assert code == 0 and "1 skipped" in out and "make frob" in out, out


@pytest.mark.parametrize("sample", ["skip", "xfail", "xpass"])
def test_nothing_may_skip_or_xfail_when_every_tier_is_required(tmp_path: Path, sample: str) -> None:
    code, out = _run(tmp_path, sample, require_all=True)
    assert code == pytest.ExitCode.TESTS_FAILED, out


def test_a_missing_part_fails_with_its_reason_when_every_tier_is_required(tmp_path: Path) -> None:
    _code, out = _run(tmp_path, "skip", require_all=True)
    assert "1 failed" in out and "make frob" in out, out


def test_a_present_part_passes_either_way(tmp_path: Path) -> None:
    for require_all in (False, True):
        code, out = _run(tmp_path, "pass", require_all=require_all)
        assert code == 0 and "1 passed" in out, out
