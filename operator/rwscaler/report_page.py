"""The weekly workload report as a page: one self-contained HTML file (the plots inlined) and the
same plots as PNG files beside it (docs/report.md).

Called by `command_report`; draws what `core.weekly` computed and computes nothing itself.
matplotlib is the optional extra `plot` (as for `rwscaler simulate --plot`).
"""

from __future__ import annotations

import base64
import html
import importlib.util
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rwscaler.core.durations import format_seconds
from rwscaler.core.weekly import WEEK_S, Week, WeeklyReport

NEEDS_MATPLOTLIB = "the report's plots need matplotlib: pip install 'rwscaler[plot]'"
# The files `write` makes in the output directory.
PLOTS = ("ratio.png", "load.png", "latency.png", "replicas.png")


def has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def _when(t: float, weekly: bool) -> str:
    """A week's bounds by day; a shorter period's (`make demo`'s minutes) by the second."""
    return _day(t) if weekly else datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "unknown" if value is None else fmt.format(value)


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value * 1000:.1f} ms"


def write(report: WeeklyReport, workload: str, out: Path) -> Path:
    """Draw the plots and the page into `out`; returns the page's path."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    weeks = report.weeks
    weekly = report.period_s == WEEK_S
    by = "week" if weekly else f"period of {format_seconds(report.period_s)}"
    labels = [f"{'W' if weekly else 'P'}{i + 1}" for i in range(len(weeks))]
    x = list(range(len(weeks)))

    def gaps(values: list[float | None]) -> list[float]:
        return [float("nan") if v is None else v for v in values]

    def ms(values: list[float | None]) -> list[float]:
        return gaps([None if v is None else v * 1000 for v in values])

    def plot(name: str, ylabel: str, title: str, draw: Callable[[Any], None]) -> None:
        fig, ax = plt.subplots(figsize=(9, 3.6))
        draw(ax)
        ax.set_xticks(x, labels)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.legend(loc="best", fontsize=7)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)

    def ratio(ax: Any) -> None:
        ax.plot(x, gaps([w.ratio for w in weeks]), marker="o", label=f"reads per write (by {by})")
        ax.set_yscale("log")

    def load(ax: Any) -> None:
        ax.plot(x, gaps([w.read_qps for w in weeks]), marker="o", label=f"read QPS (average by {by})")
        ax.plot(x, gaps([w.write_qps for w in weeks]), marker="o", label=f"write QPS (average by {by})")

    def latency(ax: Any) -> None:
        for side, color, objective in (
            ("read", "C0", report.read_objective),
            ("write", "C1", report.write_objective),
        ):
            lat = [w.read if side == "read" else w.write for w in weeks]
            ax.plot(
                x, ms([v.median for v in lat]), color=color, marker="o", label=f"{side} p99, median by {by}"
            )
            ax.plot(
                x,
                ms([v.p95 for v in lat]),
                color=color,
                linestyle=":",
                label=f"{side} p99, 95th percentile by {by}",
            )
            if objective is not None:
                ax.axhline(
                    objective * 1000, color=color, linestyle="--", linewidth=0.8, label=f"{side} objective"
                )
        # A bad week's p99 can be 10-100x the others; a log axis keeps the others readable then.
        values = [v for w in weeks for side in (w.read, w.write) for v in (side.median, side.p95) if v]
        if values and max(values) > 20 * min(values):
            ax.set_yscale("log")

    def replicas(ax: Any) -> None:
        ax.plot(x, gaps([w.replicas_avg for w in weeks]), marker="o", label="average")
        lowest, highest = gaps([w.replicas_min for w in weeks]), gaps([w.replicas_max for w in weeks])
        ax.fill_between(x, lowest, highest, alpha=0.2, label="min to max")

    plot(PLOTS[0], "read:write ratio", f"{workload}: read:write ratio by {by}", ratio)
    plot(PLOTS[1], "queries/s", "load", load)
    plot(PLOTS[2], "ms", "latency against the objectives", latency)
    plot(PLOTS[3], "read replicas", "replicas", replicas)

    page = out / "report.html"
    page.write_text(_html(report, workload, out, labels, by))
    return page


def _img(out: Path, name: str, alt: str) -> str:
    data = base64.b64encode((out / name).read_bytes()).decode()
    return f'<img class="plot" id="{name.removesuffix(".png")}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _row(label: str, w: Week, weekly: bool) -> str:
    rules = ", ".join(f"{rule} ({count:.0f})" for rule, count in w.rules.items()) or "none"
    cells = [
        label,
        f"{_when(w.start, weekly)} to {_when(w.end, weekly)}",
        _num(w.ratio, "{:.1f}:1"),
        html.escape(w.workload_class or "unknown"),
        _num(w.read_qps, "{:.0f}"),
        _num(w.write_qps, "{:.0f}"),
        _ms(w.read.median),
        _ms(w.read.p95),
        _ms(w.write.median),
        _ms(w.write.p95),
        _num(w.replicas_avg),
        html.escape(rules),
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _html(report: WeeklyReport, workload: str, out: Path, labels: list[str], by: str) -> str:
    weeks = report.weeks
    weekly = by == "week"
    title = "Weekly workload report" if weekly else f"Workload report by {by}"
    first, last = weeks[0].start, weeks[-1].end
    span = (
        f"{_day(first)} to {_day(last)}"
        if weekly
        else f"{_day(first)}, {_when(first, False)} to {_when(last, False)}"
    )
    trend = report.trend
    if report.recommendations:
        advice = "".join(f"<li>{html.escape(r.message)}</li>" for r in report.recommendations)
    else:
        advice = "<li>No change in the read:write mix calls for action.</li>"
    head = [
        "week" if weekly else "period",
        "dates (UTC)",
        "read:write",
        "class",
        "read QPS",
        "write QPS",
        "read p99 (median)",
        "read p99 (95th)",
        "write p99 (median)",
        "write p99 (95th)",
        "replicas (avg)",
        "rules that fired (decisions)",
    ]
    rows = "".join(_row(label, w, weekly) for label, w in zip(labels, weeks, strict=True))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>rwscaler {title[0].lower() + title[1:]}: {html.escape(workload)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }}
th {{ background: #f0f0f0; }}
.plot {{ display: block; max-width: 100%; margin: 1em 0; }}
#recommendations {{ background: #fff6e0; border-left: 4px solid #e0a000; padding: 0.5em 1em; }}
</style></head><body>
<h1>{title}: {html.escape(workload)}</h1>
<p>{len(weeks)} {"weeks" if weekly else f"periods of {format_seconds(report.period_s)}"},
{span} (UTC), from the rwscaler operator's own metrics.</p>
<h2>Trend</h2>
<p id="trend">{html.escape(trend.message)}</p>
<div id="recommendations"><h2>Recommendations</h2><ul>{advice}</ul></div>
<h2>Read:write ratio</h2>
{_img(out, "ratio.png", f"read:write ratio by {by}")}
<h2>Load</h2>
{_img(out, "load.png", f"read and write QPS by {by}")}
<h2>Latency against the objectives</h2>
<p>Read objective {_ms(report.read_objective)}, write objective {_ms(report.write_objective)}.</p>
{_img(out, "latency.png", f"latency by {by}")}
<h2>Replicas</h2>
{_img(out, "replicas.png", f"read replicas by {by}")}
<h2>{"Week by week" if weekly else "Period by period"}</h2>
<table id="weeks"><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>{rows}</table>
</body></html>
"""
