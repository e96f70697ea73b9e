"""The workload alerts (manifests/prometheus/rwscaler-alerts.yaml, the chart's PrometheusRule):
`promtool check rules` accepts them and `promtool test rules` runs tests/alerts/ (docs/alerts.md)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.tiers import need

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "manifests" / "prometheus" / "rwscaler-alerts.yaml"
TESTS = sorted((REPO / "tests" / "alerts").glob("*.test.yaml"))


def promtool() -> str:
    path = shutil.which("promtool")
    need(path is not None, "no promtool: run `make pgenv-deps` (Debian's prometheus package)")
    assert path is not None
    return path


def test_the_rules_are_valid() -> None:
    out = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], check=False, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 5 rules found" in out.stdout


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    assert TESTS, "no tests/alerts/*.test.yaml"
    out = subprocess.run(
        [promtool(), "test", "rules", *(t.name for t in TESTS)],
        check=False,
        cwd=TESTS[0].parent,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    tested = {
        line.split("alertname:")[1].strip()
        for t in TESTS
        for line in t.read_text().splitlines()
        if "alertname:" in line
    }
    assert tested == {
        "RwscalerMetricsUnavailable",
        "RwscalerStuckAtMaxReplicas",
        "RwscalerWriteBottleneck",
        "RwscalerReadsOnPrimary",
        "RwscalerNotReconciling",
    }
