"""`rwscaler simulate`: run policies on a scenario or a trace; with no arguments, the default
scenario with every policy, as a comparison table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rwscaler.sim.policies import POLICIES, available_policies
from rwscaler.sim.report import PLOT_NEEDS_MATPLOTLIB, SUMMARY_HEADERS, can_plot, plot, summary_row, table
from rwscaler.sim.runner import UsageError, load_model, load_scenario, load_workload, run_policies
from rwscaler.sim.scenarios import DEFAULT_SCENARIO, SCENARIOS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--scenario", choices=sorted(SCENARIOS), help=f"a built-in scenario (default {DEFAULT_SCENARIO})"
    )
    source.add_argument(
        "--trace", type=Path, metavar="FILE.csv", help="a trace: t,read_qps,write_qps[,metrics_available]"
    )
    parser.add_argument("--policy", choices=POLICIES, help="one policy (default: all, compared)")
    parser.add_argument(
        "--workload", type=Path, metavar="FILE.yaml", help="a ReadWriteWorkload that configures the policy"
    )
    parser.add_argument(
        "--model", type=Path, metavar="FILE.yaml", help="model parameters (see docs/simulator.md)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON: one object per policy")
    parser.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="write a PNG of the run (with --policy, or rwscaler's)"
    )


def run(args: argparse.Namespace) -> int:
    if args.plot is not None and not can_plot():
        print(f"rwscaler simulate: {PLOT_NEEDS_MATPLOTLIB}", file=sys.stderr)
        return 2
    try:
        spec = load_workload(args.workload)
        params = load_model(args.model)
        scn = load_scenario(args.scenario, args.trace)
    except UsageError as err:
        print(f"rwscaler simulate: {err}", file=sys.stderr)
        return 2
    policies = [args.policy] if args.policy else available_policies(spec)
    try:
        results = run_policies(scn, policies, spec, params)
    except UsageError as err:
        print(f"rwscaler simulate: {err}", file=sys.stderr)
        return 2
    if args.plot is not None:
        chosen = next(r for r in results if r.policy == (args.policy or "rwscaler"))
        plot(chosen, scn, spec, args.plot)
    if args.json:
        payload = [r.to_json() for r in results]
        json.dump(payload[0] if len(payload) == 1 else payload, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"scenario {scn.name}: {scn.description}")
    print(
        f"{len(scn.rows)} steps of {scn.step:g}s; objectives read {spec.objectives.readLatencyP99}, "
        f"write {spec.objectives.writeLatencyP99}, lag {spec.objectives.maxReplicationLag}\n"
    )
    print(table(SUMMARY_HEADERS, [summary_row(r) for r in results]))
    if args.plot is not None:
        print(f"\nplot written to {args.plot}")
    return 0
