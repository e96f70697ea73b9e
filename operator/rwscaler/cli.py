"""The `rwscaler` command line: one subcommand per job, each implemented in the module that owns it.

    rwscaler simulate   the simulator (rwscaler.sim): policies on scenarios, the embedded default
    rwscaler bench      every policy on every scenario, one table
    rwscaler crd        print the CRD rendered from the models
    rwscaler run        the operator (kopf), against the current kubeconfig
    rwscaler explain    a ReadWriteWorkload's last decision, from its status
    rwscaler report     a workload's weekly report from Prometheus, as an HTML page with plots

`main` is the `rwscaler` console script (and `python -m rwscaler`); `kubectl_plugin` is
`kubectl-rwscaler`. Each subcommand module has `add_arguments(parser)` and `run(args) -> int`, and
is reached through a small loader function that imports it. The modules load nothing heavy at
import time (kopf, the Kubernetes client, psycopg, matplotlib load inside `run`), so
`rwscaler simulate` does not load kopf or the Kubernetes client (tests/unit/test_cli.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class Command(Protocol):
    """A subcommand module."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


# The loaders import their module when called (PLC0415): the CLI starts without the operator's
# dependencies, and only the subcommands' own imports decide what a subcommand loads.


def _simulate() -> Command:
    from rwscaler.sim import command_simulate  # noqa: PLC0415

    return command_simulate


def _bench() -> Command:
    from rwscaler.sim import command_bench  # noqa: PLC0415

    return command_bench


def _crd() -> Command:
    from rwscaler import command_crd  # noqa: PLC0415

    return command_crd


def _run() -> Command:
    from rwscaler import command_run  # noqa: PLC0415

    return command_run


def _explain() -> Command:
    from rwscaler import command_explain  # noqa: PLC0415

    return command_explain


def _report() -> Command:
    from rwscaler import command_report  # noqa: PLC0415

    return command_report


@dataclass(frozen=True)
class Subcommand:
    load: Callable[[], Command]
    help: str  # one line, for `rwscaler --help` and the subcommand's own


COMMANDS: dict[str, Subcommand] = {
    "simulate": Subcommand(_simulate, "Run policies on a scenario or trace and compare them"),
    "bench": Subcommand(_bench, "Every policy on every scenario, one table"),
    "crd": Subcommand(_crd, "Print the CustomResourceDefinition rendered from the models"),
    "run": Subcommand(_run, "Run the operator against the current kubeconfig (wraps kopf run)"),
    "explain": Subcommand(_explain, "Explain a ReadWriteWorkload's last decision from its status"),
    "report": Subcommand(_report, "A workload's weekly report (ratio trend, latency, replicas) as HTML"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rwscaler",
        description="Size and route the read side of a replicated database from read/write signals.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        cmd = sub.add_parser(name, help=command.help, description=command.help)
        command.load().add_arguments(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return COMMANDS[args.command].load().run(args)


def kubectl_plugin() -> None:
    """`kubectl rwscaler ...` (the `kubectl-rwscaler` console script): status, explain, pause, resume."""
    from rwscaler.command_plugin import main as plugin_main  # noqa: PLC0415  (loaded only for the plugin)

    sys.exit(plugin_main())


if __name__ == "__main__":
    sys.exit(main())
