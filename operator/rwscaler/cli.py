"""The `rwscaler` command line: one subcommand per job, each implemented in the module that owns it.

    rwscaler simulate   the simulator (rwscaler.sim): policies on scenarios, the embedded default
    rwscaler bench      every policy on every scenario, one table
    rwscaler crd        print the CRD rendered from the models
    rwscaler run        the operator (kopf), against the current kubeconfig

Subcommand modules are imported only when their subcommand runs, so `rwscaler simulate` does not
load kopf or the Kubernetes client.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Protocol, cast


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


# subcommand -> (module implementing add_arguments/run, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("rwscaler.sim.command_simulate", "Run policies on a scenario or trace and compare them"),
    "bench": ("rwscaler.sim.command_bench", "Every policy on every scenario, one table"),
    "crd": ("rwscaler.command_crd", "Print the CustomResourceDefinition rendered from the models"),
    "run": ("rwscaler.command_run", "Run the operator against the current kubeconfig (wraps kopf run)"),
    "explain": ("rwscaler.command_explain", "Explain a ReadWriteWorkload's last decision from its status"),
}


def _load(module: str) -> _Command:
    return cast(_Command, importlib.import_module(module))


def build_parser(load: Callable[[str], _Command] = _load) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rwscaler",
        description="Size and route the read side of a replicated database from read/write signals.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        try:
            load(module).add_arguments(cmd)
        except ModuleNotFoundError as err:  # a subcommand still being built must not break the others
            if err.name != module:
                raise
            cmd.set_defaults(_missing=module)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(
            f"rwscaler {args.command}: not available in this build ({args._missing} missing)", file=sys.stderr
        )
        return 2
    return _load(args._module).run(args)


def kubectl_plugin() -> None:
    """`kubectl rwscaler ...` (the `kubectl-rwscaler` console script): status, explain, pause, resume."""
    from rwscaler.command_plugin import main as plugin_main  # noqa: PLC0415  (loaded only for the plugin)

    sys.exit(plugin_main())


if __name__ == "__main__":
    sys.exit(main())
