"""`rwscaler report` against a real Prometheus holding 12 weeks of the operator's metrics
(backfilled with `promtool tsdb create-blocks-from openmetrics`), the read:write ratio falling
from 100:1 to 30:1 as in the seed's chart; the page is opened in headless Chromium (docs/report.md).
"""

from __future__ import annotations

import base64
import math
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prom_helpers import backfilled_prometheus, openmetrics, require_prometheus
from tests.support.prometheus import PrometheusServer
from tests.support.tiers import need

WEEKS = 12
WEEK = 7 * 86400
SPACING = 1800.0  # a sample every 30 minutes: every hourly window holds two
READ_QPS = 1000.0
W = (("name", "orders"), ("namespace", "shop"))


def ratio_in_week(k: int) -> float:
    """100:1 in the first week to 30:1 in the last, geometrically (the seed's decline)."""
    return 100.0 * (30.0 / 100.0) ** (k / (WEEKS - 1))


def history(t0: float) -> str:
    series: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = {}

    def add(name: str, labels: tuple[tuple[str, str], ...], ts: float, value: float) -> None:
        series.setdefault((name, tuple(sorted((*W, *labels)))), []).append((ts, value))

    decisions = 0.0
    start = t0 - WEEKS * WEEK
    for i in range(int(WEEKS * WEEK / SPACING) + 1):
        ts = start + i * SPACING
        k = min(int((ts - start) // WEEK), WEEKS - 1)
        ratio = ratio_in_week(k)
        add("rwscaler_qps", (("side", "read"),), ts, READ_QPS)
        add("rwscaler_qps", (("side", "write"),), ts, READ_QPS / ratio)
        add("rwscaler_latency_p99_seconds", (("side", "read"),), ts, 0.030)
        add("rwscaler_latency_p99_seconds", (("side", "write"),), ts, 0.012 + 0.001 * k)
        add("rwscaler_latency_objective_seconds", (("side", "read"),), ts, 0.050)
        add("rwscaler_latency_objective_seconds", (("side", "write"),), ts, 0.020)
        add("rwscaler_replicas_current", (), ts, 2.0 if k < 6 else 3.0)
        klass = "ReadDominated" if ratio >= 50 else "ReadHeavy"
        add("rwscaler_workload_class", (("class", klass),), ts, 1.0)
        decisions += SPACING / 15  # a decision every 15 s tick
        add("rwscaler_decisions_total", (("rule", "CapacityModel"),), ts, decisions)
    return openmetrics(series)


@pytest.fixture(scope="module")
def report_prom() -> Iterator[tuple[PrometheusServer, float]]:
    require_prometheus()
    t0 = math.floor(time.time() / 3600) * 3600.0 - 3600  # whole hours, an hour back: all in blocks
    with backfilled_prometheus(history(t0)) as prom:
        prom.wait_for('count_over_time(rwscaler_qps{side="write"}[1h] offset 80d)', timeout=120)
        yield prom, t0


def report(prom: PrometheusServer, t0: float, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "rwscaler",
            "report",
            "orders",
            "-n",
            "shop",
            "--prometheus-url",
            prom.url,
            "--end",
            str(t0),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_report_shows_the_declining_ratio_and_recommends_write_optimization(
    report_prom: tuple[PrometheusServer, float], tmp_path: Path
) -> None:
    prom, t0 = report_prom
    out = tmp_path / "report"
    done = report(prom, t0, out)
    assert done.returncode == 0, done.stderr
    page = Path(done.stdout.strip())
    assert page == out / "report.html"
    assert "querying Prometheus [" in done.stderr and "8/8" in done.stderr  # the progress bar
    text = page.read_text()

    # Twelve weeks, each with its ratio (the backfilled one, within rounding of hourly averages).
    rows = re.findall(r"<tr><td>W(\d+)</td><td>[^<]*</td><td>([0-9.]+):1</td><td>([A-Za-z]+)</td>", text)
    assert [int(r[0]) for r in rows] == list(range(1, WEEKS + 1))
    for k, (_, ratio, _klass) in enumerate(rows):
        assert float(ratio) == pytest.approx(ratio_in_week(k), rel=0.05), (k, ratio)
    assert rows[0][2] == "ReadDominated" and rows[-1][2] == "ReadHeavy"
    # The decision core's trend rule, and the advice the operator's status gives for it.
    trend = re.search(r'<p id="trend">(.*?)</p>', text, re.S)
    assert trend is not None and "writes are gaining share" in trend.group(1), trend
    assert "evaluate write-optimized storage" in text
    assert "CapacityModel" in text

    # The plots: four PNG files, the same four inlined in the page.
    images = re.findall(
        r'<img class="plot" id="(\w+)" alt="[^"]*" src="data:image/png;base64,([^"]+)">', text
    )
    assert [name for name, _ in images] == ["ratio", "load", "latency", "replicas"]
    for name, data in images:
        assert base64.b64decode(data) == (out / f"{name}.png").read_bytes()

    # The page as a browser shows it.
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    need(chromium is not None, "no chromium: apt-get install chromium (make report-deps)")
    assert chromium is not None
    shot = tmp_path / "report.png"
    browsed = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1280,2600",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert browsed.returncode == 0 and shot.is_file(), browsed.stderr
    import matplotlib.image  # noqa: PLC0415

    pixels = matplotlib.image.imread(shot)  # height x width x RGB(A), 0..1
    height = pixels.shape[0]
    # matplotlib's first line colour (#1f77b4) drawn by the page: the plots are on screen, in
    # its upper part (the ratio plot) and further down (load, latency).
    blue = (
        (abs(pixels[:, :, 0] - 0x1F / 255) < 0.05)
        & (abs(pixels[:, :, 1] - 0x77 / 255) < 0.05)
        & (abs(pixels[:, :, 2] - 0xB4 / 255) < 0.05)
    )
    rows_with_blue = blue.any(axis=1).nonzero()[0]
    assert len(rows_with_blue) > 200, "no plot lines on the screenshot"
    assert rows_with_blue.min() < height / 2
