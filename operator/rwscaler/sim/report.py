"""Tables and plots of simulation results (text for the terminal, PNG for people)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.sim.engine import Result
from rwscaler.sim.trace import Scenario


def scale_ups_in_window(result: Result, scenario: Scenario) -> int | None:
    """Scale-ups asked for inside the scenario's window (the write surge, the storm), or None."""
    if scenario.window is None:
        return None
    start, end = scenario.window
    ups, prev = 0, None
    for entry in result.timeline:
        if prev is not None and start <= entry["t"] < end and entry["replicas"] > prev:
            ups += 1
        prev = entry["replicas"]
    return ups


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return "-" if value is None else str(value)


SUMMARY_HEADERS = (
    "policy",
    "read viol min",
    "write viol min",
    "replica-h",
    "stale reads %",
    "ups",
    "downs",
    "max repl",
)


def summary_row(result: Result) -> list[object]:
    s = result.summary
    return [
        result.policy,
        s.read_slo_violation_minutes,
        s.write_slo_violation_minutes,
        s.replica_hours,
        100 * s.stale_read_fraction,
        s.scale_ups,
        s.scale_downs,
        s.max_replicas,
    ]


PLOT_NEEDS_MATPLOTLIB = "--plot needs matplotlib: pip install 'rwscaler[plot]'"


def can_plot() -> bool:
    """Whether matplotlib is installed (it is the optional extra `plot`, not a dependency)."""
    return importlib.util.find_spec("matplotlib") is not None


def plot(result: Result, scenario: Scenario, spec: ReadWriteWorkloadSpec, path: Path) -> None:
    """A PNG: load, replicas, read and write p99 against objectives, lag, with rule firings."""
    import matplotlib  # noqa: PLC0415  (only --plot needs it; keeps plain runs fast)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    tl = result.timeline
    hours = [e["t"] / 3600 for e in tl]
    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    ax = axes[0]
    ax.plot(hours, [e["read_qps"] for e in tl], label="read QPS")
    ax.plot(hours, [e["write_qps"] for e in tl], label="write QPS")
    ax.set_ylabel("queries/s")
    ax.legend(loc="upper left")
    ax.set_title(f"{scenario.name} - policy {result.policy}: {scenario.description}", fontsize=9)
    ax = axes[1]
    ax.step(hours, [e["replicas"] for e in tl], where="post", label="replicas")
    ax.step(hours, [e["ready_replicas"] for e in tl], where="post", label="ready")
    ax.step(
        hours,
        [len([p for p in e["read_pool"] if p != "primary"]) for e in tl],
        where="post",
        label="in read pool",
    )
    ax.set_ylabel("replicas")
    ax.legend(loc="upper left")
    ax = axes[2]
    ax.plot(hours, [e["read_p99_ms"] for e in tl], label="read p99")
    ax.plot(hours, [e["write_p99_ms"] for e in tl], label="write p99")
    ax.axhline(
        spec.objectives.read_latency_s * 1000,
        linestyle="--",
        color="C0",
        linewidth=0.8,
        label="read objective",
    )
    ax.axhline(
        spec.objectives.write_latency_s * 1000,
        linestyle="--",
        color="C1",
        linewidth=0.8,
        label="write objective",
    )
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[3]
    ax.plot(hours, [e["max_lag_seconds"] or 0 for e in tl], label="max replica lag")
    ax.axhline(spec.objectives.max_lag_s, linestyle="--", color="C3", linewidth=0.8, label="lag objective")
    ax.set_ylabel("seconds")
    ax.set_xlabel("hours")
    ax.legend(loc="upper left")
    marks = {
        "Scale": "C2",
        "WriteBottleneck": "C3",
        "CapacityLimit": "C4",
        "ReplicaLeftPool": "C5",
        "MetricsUnknown": "C7",
    }
    seen: set[str] = set()
    step = tl[1]["t"] - tl[0]["t"] if len(tl) > 1 else 0.0
    last_fired: dict[str, float] = {}
    for t, rule in result.fired:
        # Mark where a rule starts firing, not every tick it keeps firing.
        onset = t - last_fired.get(rule, float("-inf")) > step
        last_fired[rule] = t
        if rule in marks and onset:
            axes[1].axvline(
                t / 3600, color=marks[rule], alpha=0.3, linewidth=0.8, label=None if rule in seen else rule
            )
            seen.add(rule)
    if seen:
        axes[1].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
