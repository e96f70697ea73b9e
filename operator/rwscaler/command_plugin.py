"""`kubectl rwscaler`: the kubectl plugin (the `kubectl-rwscaler` console script).

    kubectl rwscaler status [-n NS | -A]     one line per ReadWriteWorkload, from its status
    kubectl rwscaler explain NAME [-n NS]    the last decision in words, and when the next may act
    kubectl rwscaler pause NAME [-n NS]      set rwscaler.io/paused=true: decide and report only
    kubectl rwscaler resume NAME [-n NS]     remove it: act again

Called by `rwscaler.cli.kubectl_plugin` (the console script's entry point). This module parses
the arguments, connects with the project's client (`rwscaler.kube.client`, whose loader in
`rwscaler.kube.config` reads the kubeconfig as kubectl does: `--kubeconfig`, else the merged
`$KUBECONFIG` files, else `~/.kube/config`; in a pod, the in-cluster account), talks to the API
through `rwscaler.plugin_api` and prints what `rwscaler.plugin_table`, `rwscaler.command_explain`
and `rwscaler.plugin_next` render. `--kubeconfig`, `--context` and `-n/--namespace` work as in
kubectl, before or after the subcommand; the namespace defaults to the context's, else `default`.
A failure is one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence

from rwscaler import command_explain, plugin_api, plugin_next, plugin_table
from rwscaler.core.spec import PAUSED_ANNOTATION
from rwscaler.kube.client import KubeClient
from rwscaler.kube.config import KubeConfigError
from rwscaler.plugin_api import PluginError

PROG = "kubectl rwscaler"


def _connection_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # On the subcommands the defaults are SUPPRESS, so a flag given before the subcommand is
    # not overwritten by the subcommand's default.
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        default=default,
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)",
    )
    parser.add_argument(
        "--context", metavar="NAME", default=default, help="kubeconfig context (default: current-context)"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        default=default,
        help="namespace (default: the context's, else default)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Look at and steer rwscaler's ReadWriteWorkloads (kubectl plugin)."
    )
    _connection_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    status = sub.add_parser("status", help="a table of ReadWriteWorkloads and what is not OK")
    _connection_flags(status, suppress=True)
    status.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    explain = sub.add_parser("explain", help="the last decision in words, and when the next action may come")
    _connection_flags(explain, suppress=True)
    explain.add_argument("name", help="the ReadWriteWorkload")
    for verb, text in (
        ("pause", f"set {PAUSED_ANNOTATION}=true: rwscaler decides and reports, changes nothing"),
        ("resume", f"remove {PAUSED_ANNOTATION}: rwscaler acts again"),
    ):
        cmd = sub.add_parser(verb, help=text, description=text)
        _connection_flags(cmd, suppress=True)
        cmd.add_argument("name", help="the ReadWriteWorkload")
    return parser


async def _status(client: KubeClient, args: argparse.Namespace, namespace: str, server: str | None) -> str:
    scope = None if args.all_namespaces else namespace
    items = await plugin_api.list_workloads(client, scope, server)
    if not items:
        where = "any namespace" if scope is None else f'namespace "{scope}"'
        return f"No ReadWriteWorkloads found in {where}."
    return plugin_table.render(items, all_namespaces=args.all_namespaces)


async def _explain(client: KubeClient, args: argparse.Namespace, namespace: str, server: str | None) -> str:
    obj = await plugin_api.get_workload(client, namespace, args.name, server)
    lines = [command_explain.render(obj), *plugin_next.next_action(obj, time.time())]
    return "\n".join(lines)


async def _pause(client: KubeClient, args: argparse.Namespace, namespace: str, server: str | None) -> str:
    pausing = args.command == "pause"
    was_paused, after = await plugin_api.set_paused(client, namespace, args.name, pausing, server)
    who = f"{namespace}/{args.name}"
    if pausing:
        done = "already paused" if was_paused else "paused"
        return f"{who} {done}: rwscaler decides and reports, changes nothing"
    mode = plugin_api.spec_mode(after)
    done = "resumed" if was_paused else "was not paused"
    if mode == "Recommend":
        return f"{who} {done}: mode Recommend, rwscaler decides and reports, changes nothing"
    return f"{who} {done}: rwscaler acts again (mode {mode})"


def connect(args: argparse.Namespace) -> tuple[KubeClient, str]:
    """The client on the user's kubeconfig and context, and the namespace: `-n`, else the context's
    (`default` when it names none; in a pod, the ServiceAccount's)."""
    try:
        client = KubeClient.from_kubeconfig(args.kubeconfig, args.context)
    except KubeConfigError as err:
        raise PluginError(str(err)) from err
    return client, args.namespace or client.config.namespace


async def _run(args: argparse.Namespace) -> str:
    client, namespace = connect(args)
    server = client.server
    try:
        if args.command == "status":
            return await _status(client, args, namespace, server)
        if args.command == "explain":
            return await _explain(client, args, namespace, server)
        return await _pause(client, args, namespace, server)
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        output = asyncio.run(_run(args))
    except PluginError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(output)
    return 0


if __name__ == "__main__":  # `python -m rwscaler.command_plugin` (the krew shim runs it so)
    sys.exit(main())
