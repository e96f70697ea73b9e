"""`rwscaler run`: the operator (kopf, embedded) against the current kubeconfig or the in-cluster account.

    rwscaler run                      every namespace (needs the ClusterRole of manifests/rbac)
    rwscaler run -n shop -n billing   only these namespaces
    rwscaler run --kubeconfig FILE --liveness http://127.0.0.1:8080/healthz

The kopf wiring lives in `rwscaler.handlers` (the only module that imports kopf); this module
only turns arguments into `RunOptions`.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NAMESPACE",
        help="watch only this namespace (repeatable)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)"
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or the in-cluster account)",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="serve a liveness probe at this URL, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--debug", action="store_true", help="log everything, including kopf internals")


def run(args: argparse.Namespace) -> int:
    if args.kubeconfig:
        # kopf's own login reads $KUBECONFIG; the operator's client is given the same file.
        os.environ["KUBECONFIG"] = args.kubeconfig
    from rwscaler import handlers  # noqa: PLC0415  (kopf loads only when the operator runs)

    options = handlers.RunOptions(
        namespaces=tuple(args.namespaces or ()),
        kubeconfig=args.kubeconfig,
        liveness_endpoint=args.liveness,
        verbose=args.verbose,
        debug=args.debug,
    )
    return handlers.run(options)
