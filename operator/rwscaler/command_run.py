"""`rwscaler run`: the operator (kopf, embedded) against the current kubeconfig or the in-cluster account.

    rwscaler run                      every namespace (needs the ClusterRole of manifests/rbac)
    rwscaler run -n shop -n billing   only these namespaces
    rwscaler run --kubeconfig FILE --liveness http://127.0.0.1:8080/healthz
    rwscaler run --leader-elect --lease-namespace rwscaler-system   (several replicas, one acts)
    rwscaler run --shards --lease-namespace rwscaler-system   (several replicas split the workloads)
    rwscaler run --prometheus-url http://prometheus.monitoring:9090 (for workloads that name none)
    rwscaler run --admission-webhook 127.0.0.1:9443 --admission-webhook-cert tls.crt \
                 --admission-webhook-key tls.key     (refuse workloads naming Secrets and ConfigMaps
                                                      their creator may not use: docs/security.md)

The kopf wiring lives in `rwscaler.handlers` (the only module that imports kopf); this module
only turns arguments into `RunOptions`.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import socket
import sys
from pathlib import Path

LOG_LEVELS = ("debug", "info", "warning", "error")
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=os.environ.get("RWSCALER_LOG_LEVEL", "info"),
        help="debug logs every tick, HTTP request and kopf internals (default: info, or $RWSCALER_LOG_LEVEL)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_const",
        const="debug",
        dest="log_level",
        help="the same as --log-level debug",
    )
    parser.add_argument(
        "--prometheus-url",
        metavar="URL",
        default=os.environ.get("RWSCALER_PROMETHEUS_URL") or None,
        help="the Prometheus of workloads whose spec names none (default: $RWSCALER_PROMETHEUS_URL)",
    )
    parser.add_argument(
        "--metrics-address",
        metavar="ADDR:PORT",
        help="serve the operator's own metrics at /metrics on this address, e.g. 0.0.0.0:8081 "
        "(docs/operator-metrics.md; default: not served)",
    )
    webhook = parser.add_argument_group(
        "admission webhook",
        "refuse a ReadWriteWorkload whose spec names a Secret its creator may not get or a ConfigMap "
        "they may not patch (docs/security.md); the ValidatingWebhookConfiguration is installed "
        "separately (the chart's admissionWebhook.enabled)",
    )
    webhook.add_argument(
        "--admission-webhook",
        metavar="ADDR:PORT",
        help="serve the webhook over HTTPS on this address, e.g. 127.0.0.1:9443 (the path is /references)",
    )
    webhook.add_argument("--admission-webhook-cert", metavar="FILE", help="the server certificate (PEM)")
    webhook.add_argument("--admission-webhook-key", metavar="FILE", help="its private key (PEM)")
    election = parser.add_argument_group(
        "leader election", "with several replicas, only the holder of a coordination.k8s.io Lease acts"
    )
    election.add_argument("--leader-elect", action="store_true", help="act only while holding the Lease")
    election.add_argument("--lease-name", default="rwscaler", help="the Lease's name (default: rwscaler)")
    election.add_argument(
        "--lease-namespace",
        help="the Lease's namespace (default: $POD_NAMESPACE, else the in-cluster account's namespace)",
    )
    election.add_argument(
        "--identity",
        help="this replica's holder identity (default: $POD_NAME or the host name, plus a suffix)",
    )
    sharding = parser.add_argument_group(
        "sharding",
        "several replicas split the workloads, each owning a disjoint share; a replica that joins "
        "or leaves moves only its share (a Lease per replica in --lease-namespace; docs/operator.md)",
    )
    sharding.add_argument(
        "--shards", action="store_true", help="act only on this replica's share of the workloads"
    )
    sharding.add_argument(
        "--shard-group",
        default="rwscaler",
        type=_shard_group,
        help="the replicas that split the workloads, named on their Leases (default: rwscaler)",
    )


def _shard_group(text: str) -> str:
    # A label value and the prefix of a Lease name (`<group>-<12 hex digits>`, at most 63).
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a group name: lower-case letters, digits and '-', at most 50 characters"
        )
    return text


def _lease_namespace(args: argparse.Namespace) -> str | None:
    if args.lease_namespace:
        return str(args.lease_namespace)
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


def _identity(args: argparse.Namespace) -> str:
    if args.identity:
        return str(args.identity)
    # A restarted pod keeps its name: the suffix tells its new process from the old holder.
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{secrets.token_hex(4)}"


def parse_listen(text: str) -> tuple[str, int]:
    """ADDR:PORT (IPv6 as [ADDR]:PORT) -> (addr, port); ValueError with the reason."""
    addr, sep, port_text = text.rpartition(":")
    addr = addr.removeprefix("[").removesuffix("]")
    if not sep or not addr or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r} is not ADDR:PORT (e.g. 127.0.0.1:9443)")
    return addr, int(port_text)


def _admission(args: argparse.Namespace) -> tuple[tuple[str, int, str, str] | None, str | None]:
    """The webhook's (addr, port, cert, key), or the problem with the arguments."""
    cert, key = args.admission_webhook_cert, args.admission_webhook_key
    if not args.admission_webhook:
        if cert or key:
            return None, "--admission-webhook-cert/-key need --admission-webhook"
        return None, None
    try:
        addr, port = parse_listen(args.admission_webhook)
    except ValueError as err:
        return None, f"--admission-webhook: {err}"
    if not cert or not key:
        return None, "--admission-webhook needs --admission-webhook-cert and --admission-webhook-key"
    for flag, path in (("--admission-webhook-cert", cert), ("--admission-webhook-key", key)):
        if not Path(path).is_file():
            return None, f"{flag}: no file {path}"
    return (addr, port, str(cert), str(key)), None


def run(args: argparse.Namespace) -> int:
    admission, problem = _admission(args)
    if problem is not None:
        print(f"rwscaler run: {problem}", file=sys.stderr)
        return 2
    metrics_address = None
    if args.metrics_address:
        try:
            metrics_address = parse_listen(args.metrics_address)
        except ValueError as err:
            print(f"rwscaler run: --metrics-address: {err}", file=sys.stderr)
            return 2
    election = sharding = None
    if args.leader_elect and args.shards:
        print("rwscaler run: --leader-elect and --shards exclude each other: choose one", file=sys.stderr)
        return 2
    if args.leader_elect or args.shards:
        namespace = _lease_namespace(args)
        if namespace is None:
            flag = "--leader-elect" if args.leader_elect else "--shards"
            print(f"rwscaler run: {flag} needs --lease-namespace (or $POD_NAMESPACE)", file=sys.stderr)
            return 2
        if args.leader_elect:
            election = (namespace, args.lease_name, _identity(args))
        else:
            sharding = (namespace, args.shard_group, _identity(args))
    if args.kubeconfig:
        # kopf's own login reads $KUBECONFIG; the operator's client is given the same file.
        os.environ["KUBECONFIG"] = args.kubeconfig
    from rwscaler import handlers  # noqa: PLC0415  (kopf loads only when the operator runs)
    from rwscaler.kube.config import KubeConfigError, load_config  # noqa: PLC0415
    from rwscaler.reconcile import OperatorDefaults, prometheus_url_problem  # noqa: PLC0415

    if args.prometheus_url and (problem := prometheus_url_problem(args.prometheus_url)):
        print(f"rwscaler run: --prometheus-url: {problem}", file=sys.stderr)
        return 2
    try:
        # Once before kopf starts: a bad kubeconfig is one line and exit 1, not a startup
        # handler that kopf retries with a traceback every minute.
        load_config(args.kubeconfig)
    except KubeConfigError as err:
        print(f"rwscaler run: {err}", file=sys.stderr)
        return 1

    options = handlers.RunOptions(
        namespaces=tuple(args.namespaces or ()),
        kubeconfig=args.kubeconfig,
        liveness_endpoint=args.liveness,
        log_level=args.log_level,
        leader_election=handlers.LeaderElection(*election) if election else None,
        sharding=handlers.Sharding(*sharding) if sharding else None,
        admission=handlers.AdmissionWebhook(*admission) if admission else None,
        defaults=OperatorDefaults(prometheus_url=args.prometheus_url),
        metrics_address=metrics_address,
    )
    return handlers.run(options)
