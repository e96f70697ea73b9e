"""`rwscaler bench` (`make bench`): every policy on every scenario, one table, and the goals."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rwscaler.sim.engine import Result
from rwscaler.sim.policies import POLICIES
from rwscaler.sim.report import scale_ups_in_window, table
from rwscaler.sim.runner import UsageError, load_model, load_workload, run_policies
from rwscaler.sim.scenarios import SCENARIOS

HEADERS = (
    "scenario",
    "policy",
    "read viol min",
    "write viol min",
    "replica-h",
    "x oracle",
    "stale %",
    "ups",
    "downs",
    "ups in window",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workload", type=Path, metavar="FILE.yaml", help="a ReadWriteWorkload for the policies"
    )
    parser.add_argument("--model", type=Path, metavar="FILE.yaml", help="model parameters")


def run(args: argparse.Namespace) -> int:
    try:
        spec = load_workload(args.workload)
        params = load_model(args.model)
    except UsageError as err:
        print(f"rwscaler bench: {err}", file=sys.stderr)
        return 2
    rows: list[list[object]] = []
    totals: dict[str, list[float]] = {p: [0.0, 0.0, 0.0] for p in POLICIES}
    ratios: list[tuple[str, float]] = []
    write_surge_ups = 0
    stale = 0.0
    for name, make in SCENARIOS.items():
        scn = make()
        results: dict[str, Result] = {r.policy: r for r in run_policies(scn, POLICIES, spec, params)}
        oracle_h = results["oracle"].summary.replica_hours
        for policy, r in results.items():
            s = r.summary
            ratio = s.replica_hours / oracle_h if oracle_h else float("nan")
            rows.append(
                [
                    name,
                    policy,
                    s.read_slo_violation_minutes,
                    s.write_slo_violation_minutes,
                    s.replica_hours,
                    ratio,
                    100 * s.stale_read_fraction,
                    s.scale_ups,
                    s.scale_downs,
                    scale_ups_in_window(r, scn),
                ]
            )
            t = totals[policy]
            t[0] += s.read_slo_violation_minutes
            t[1] += s.write_slo_violation_minutes
            t[2] += s.replica_hours
        rw = results["rwscaler"]
        ratios.append((name, rw.summary.replica_hours / oracle_h if oracle_h else float("nan")))
        stale = max(stale, rw.summary.stale_read_fraction)
        if name == "write-surge":
            write_surge_ups = scale_ups_in_window(rw, scn) or 0
    print(table(HEADERS, rows))
    print()
    print(
        table(("policy", "read viol min", "write viol min", "replica-h"), [[p, *totals[p]] for p in POLICIES])
    )
    rw_t, hpa_t = totals["rwscaler"], totals["hpa"]
    worst = max(ratios, key=lambda x: x[1])
    goals = [
        (
            "read violations <= 0.5 x HPA",
            f"{rw_t[0]:.1f} vs {hpa_t[0]:.1f} min (x{rw_t[0] / hpa_t[0]:.2f})"
            if hpa_t[0]
            else f"{rw_t[0]:.1f} vs 0",
            rw_t[0] <= 0.5 * hpa_t[0],
        ),
        (
            "replica-hours <= HPA",
            f"{rw_t[2]:.1f} vs {hpa_t[2]:.1f} h (x{rw_t[2] / hpa_t[2]:.2f})",
            rw_t[2] <= hpa_t[2],
        ),
        ("zero stale reads", f"max stale share {100 * stale:.3f}%", stale == 0),
        ("no scale-up in the write surge", f"{write_surge_ups} scale-up(s)", write_surge_ups == 0),
        ("replica-hours <= 1.25 x oracle everywhere", f"worst {worst[0]} x{worst[1]:.2f}", worst[1] <= 1.25),
    ]
    print()
    print(table(("goal", "measured", "met"), [[g, m, "yes" if ok else "NO"] for g, m, ok in goals]))
    return 0
