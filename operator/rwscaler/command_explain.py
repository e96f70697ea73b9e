"""`rwscaler explain`: a ReadWriteWorkload's last decision, in words, from its status.

    rwscaler explain orders-db -n shop              read it from the cluster (current kubeconfig)
    kubectl get rww orders-db -o yaml | rwscaler explain -f -

Everything shown was written by the operator's tick (`rwscaler.report`): the summary, the rules
that fired with their inputs, the scale target and the primary, the signals, the read pool,
conditions and recommendations. Nothing is recomputed here, so the explanation is the one the
decision was made with. The status is read through its model (`rwscaler.core.status`), so a
status of another version shows what it has and `?` for what it lacks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from rwscaler.core.spec import PLURAL
from rwscaler.core.status import StatusObserved, StatusReplicaCounts, WorkloadStatus, parse_status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="the ReadWriteWorkload's name")
    parser.add_argument("-n", "--namespace", default="default", help="its namespace (default: default)")
    parser.add_argument("-f", "--file", metavar="FILE", help="read the object from FILE ('-': stdin)")
    parser.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG)")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")


def _or_unknown(value: object) -> object:
    return "?" if value is None else value


def _condition_lines(status: WorkloadStatus, indent: str) -> list[str]:
    return [f"{indent}{c.type}={c.status} ({c.reason}): {c.message}" for c in status.conditions or []]


def render(obj: Mapping[str, Any]) -> str:
    """The explanation of one ReadWriteWorkload object (as read from the API)."""
    meta = obj.get("metadata") or {}
    lines = [f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"]
    if not obj.get("status"):
        return lines[0] + ": no status yet (is the operator running?)"
    status = parse_status(obj.get("status"))
    decision = status.decision
    if decision is None or not decision.model_fields_set:
        # Only a problem was ever reported (the spec could not be used): the conditions say why.
        lines.append("  no decision yet:")
        lines.extend(_condition_lines(status, "    "))
        return "\n".join(lines)
    lines.append(f"  mode:      {_or_unknown(status.mode)}")
    if decision.summary:
        lines.append(f"  decision:  {decision.summary}")
    replicas = status.replicas or StatusReplicaCounts()
    lines.append(
        f"  replicas:  current {_or_unknown(replicas.current)}, desired {_or_unknown(replicas.desired)}, "
        f"ready {_or_unknown(replicas.ready)}"
        + (f"; last scaled {status.lastScaleTime}" if status.lastScaleTime else "")
    )
    if status.scaleTarget is not None:
        t = status.scaleTarget
        lines.append(
            f"  target:    {_or_unknown(t.kind)}/{_or_unknown(t.name)} ({_or_unknown(t.apiVersion)}), "
            f"its count {_or_unknown(t.replicas)}"
        )
    if status.primary is not None:
        lines.append(
            f"  primary:   {_or_unknown(status.primary.pod)} (source: {_or_unknown(status.primary.source)})"
        )
    lines.append(
        f"  class:     {_or_unknown(status.workloadClass)} (reads:writes {_or_unknown(status.readWriteRatio)})"
    )
    observed = status.observed or StatusObserved()
    lines.append(
        "  signals:   "
        + ", ".join(
            f"{name} {_or_unknown(value)}"
            for name, value in (
                ("readQPS", observed.readQPS),
                ("writeQPS", observed.writeQPS),
                ("readLatencyP99", observed.readLatencyP99),
                ("writeLatencyP99", observed.writeLatencyP99),
            )
        )
    )
    for name, why in (observed.unknown or {}).items():
        lines.append(f"             {name} unknown: {why}")
    if observed.keyMetrics is not None:
        known = observed.keyMetrics.model_dump(exclude_none=True)
        lines.append("  key metrics: " + ", ".join(f"{name} {value}" for name, value in known.items()))
    lines.append(f"  read pool: {', '.join(status.readEndpoints or []) or 'none'}")
    for r in observed.replicas or []:
        flags = ["ready" if r.ready else "not ready", f"lag {r.lag}"]
        if r.lagBytes is not None:
            flags.append(f"lag {r.lagBytes}")
        flags.append("in pool" if r.inReadPool else "out of pool")
        if r.draining:
            flags.append("draining")
        lines.append(f"             {r.name}: {', '.join(flags)}")
    lines.append("  conditions:")
    lines.extend(_condition_lines(status, "    "))
    if decision.reasons:
        lines.append("  why:")
        for reason in decision.reasons:
            inputs = reason.inputs or {}
            shown = f" [{', '.join(f'{k}={v}' for k, v in inputs.items())}]" if inputs else ""
            lines.append(f"    {reason.rule}: {reason.message}{shown}")
    if status.recommendations:
        lines.append("  recommendations:")
        for rec in status.recommendations:
            lines.append(f"    {rec.type}: {rec.message}")
    return "\n".join(lines)


async def _fetch(kubeconfig: str | None, namespace: str, name: str) -> dict[str, Any] | None:
    from rwscaler.kube.client import KubeClient  # noqa: PLC0415  (only when reading the cluster)
    from rwscaler.kube.cluster import workload_path  # noqa: PLC0415

    client = KubeClient.from_kubeconfig(kubeconfig)
    try:
        return await client.get(workload_path(namespace, name))
    finally:
        await client.close()


def run(args: argparse.Namespace) -> int:
    if args.file:
        text = sys.stdin.read() if args.file == "-" else open(args.file).read()  # noqa: SIM115
        obj = yaml.safe_load(text)
    elif args.name:
        from rwscaler.kube.client import KubeApiError  # noqa: PLC0415
        from rwscaler.kube.config import KubeConfigError  # noqa: PLC0415

        try:
            obj = asyncio.run(_fetch(args.kubeconfig, args.namespace, args.name))
        except (KubeConfigError, KubeApiError) as err:
            print(f"rwscaler explain: {err}", file=sys.stderr)
            return 1
        if obj is None:
            print(f"{PLURAL} {args.namespace}/{args.name} not found", file=sys.stderr)
            return 1
    else:
        print("rwscaler explain: give a NAME or -f FILE", file=sys.stderr)
        return 2
    if not isinstance(obj, dict):
        print("rwscaler explain: not a ReadWriteWorkload object", file=sys.stderr)
        return 2
    if args.output == "json":
        print(json.dumps(obj.get("status") or {}, indent=2))
    else:
        print(render(obj))
    return 0
