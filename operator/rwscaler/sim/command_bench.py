"""`rwscaler bench` (`make bench`): every policy on every scenario, one table, and the goals.

Without `--model` it runs two model sets, one after the other: the default model
(rwscaler.sim.model) and the model fitted to a real PostgreSQL 15 by `make calibrate`
(sim/models/pg15-local.yaml), with its capacities scaled to the default's 1,000 reads/s per
replica (`ModelParams.normalized`: the same database meeting a proportionally smaller load, so the
scenarios and the workload's target apply as written). `--model FILE` runs that model alone.

The CLI (cli.py) dispatches here. The goal lines (goals.py) are information for planning: the
command exits 0 whatever they say, since CI runs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.sim.engine import Result
from rwscaler.sim.goals import Goal, ratio_text, scenario_goals
from rwscaler.sim.model import ModelParams
from rwscaler.sim.policies import available_policies
from rwscaler.sim.report import scale_ups_in_window, table
from rwscaler.sim.runner import UsageError, load_model, load_workload, run_policies
from rwscaler.sim.scenarios import SCENARIOS

CALIBRATED_MODEL = Path(__file__).with_name("models") / "pg15-local.yaml"
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
        if args.model is not None:
            sets = [(str(args.model), load_model(args.model))]
        else:
            default = ModelParams()
            calibrated = load_model(CALIBRATED_MODEL).normalized(default.replicaReadCapacity)
            sets = [
                ("default (rwscaler.sim.model)", default),
                (
                    f"calibrated ({CALIBRATED_MODEL.name}, capacities scaled to "
                    f"{default.replicaReadCapacity:,.0f} reads/s per replica)",
                    calibrated,
                ),
            ]
    except UsageError as err:
        print(f"rwscaler bench: {err}", file=sys.stderr)
        return 2
    for i, (name, params) in enumerate(sets):
        if i:
            print()
        print(f"=== model set: {name} ===")
        _bench(spec, params)
    return 0


def _bench(spec: ReadWriteWorkloadSpec, params: ModelParams) -> None:
    policies = available_policies(spec)
    rows: list[list[object]] = []
    totals: dict[str, list[float]] = {p: [0.0, 0.0, 0.0] for p in policies}
    goals: list[Goal] = []
    for name, make in SCENARIOS.items():
        scn = make()
        results: dict[str, Result] = {r.policy: r for r in run_policies(scn, policies, spec, params)}
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
        goals.extend(scenario_goals(scn, results))
    print(table(HEADERS, rows))
    print()
    keda = totals.get("keda-qps")
    print(
        table(
            ("policy", "read viol min", "x keda-qps", "write viol min", "replica-h", "x keda-qps"),
            [
                [
                    p,
                    t[0],
                    ratio_text(t[0], keda[0]) if keda else "-",
                    t[1],
                    t[2],
                    ratio_text(t[2], keda[2]) if keda else "-",
                ]
                for p, t in totals.items()
            ],
        )
    )
    print()
    print(
        table(
            ("scenario", "kind", "goal", "measured", "met"),
            [[g.scenario, g.kind, g.goal, g.measured, "yes" if g.met else "NO"] for g in goals],
        )
    )
    print(f"\ngoals met: {sum(g.met for g in goals)} of {len(goals)} (information for planning; exit 0)")
