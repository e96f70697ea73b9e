"""The signals rwscaler reads, and how a preset declares the PromQL for one of them.

Shared vocabulary of `presets.py` (which fills `SignalTemplate`s in), `group.py` (which renders
them for a group of workloads and splits the answers) and `prometheus.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rwscaler.core.observation import Aggregation


class SignalName(StrEnum):
    """Named exactly like the fields of `spec.metrics.queries` (SignalQueries)."""

    READ_QPS = "readQPS"
    WRITE_QPS = "writeQPS"
    READ_LATENCY = "readLatencyP99"
    WRITE_LATENCY = "writeLatencyP99"
    REPLICATION_LAG = "replicationLag"
    # WAL not yet replayed, per replica pod; asked only of workloads with objectives.maxReplicationLagBytes.
    REPLICATION_LAG_BYTES = "replicationLagBytes"
    IS_REPLICA = "isReplica"  # the role metric: 1 for a replica, 0 for the primary, per pod
    # The key metrics beyond QPS and latency (core/observation.Diagnostics, docs/diagnosis.md):
    # one value per workload, unknown (NotConfigured) where the preset has no template.
    READ_BYTES = "readBytesPerSecond"
    WRITE_BYTES = "writeBytesPerSecond"
    READ_CPU = "readCPUSecondsPerSecond"
    WRITE_CPU = "writeCPUSecondsPerSecond"
    READ_POOL_ACTIVE = "readPoolActive"
    WRITE_POOL_ACTIVE = "writePoolActive"
    READ_POOL_WAITING = "readPoolWaiting"
    WRITE_POOL_WAITING = "writePoolWaiting"
    LOCK_WAITS = "lockWaits"
    DEADLOCKS = "deadlocksPerSecond"
    ROWS_PER_WRITE = "rowsPerWrite"


# Signals answered per pod (a value for each pod of `per_pod_signal_pods`), not one per workload.
PER_POD_SIGNALS = (SignalName.REPLICATION_LAG, SignalName.REPLICATION_LAG_BYTES, SignalName.IS_REPLICA)
LATENCY_SIGNALS = (SignalName.READ_LATENCY, SignalName.WRITE_LATENCY)

# In the order of core/observation.Diagnostics' fields.
DIAGNOSTIC_SIGNALS = (
    SignalName.READ_BYTES,
    SignalName.WRITE_BYTES,
    SignalName.READ_CPU,
    SignalName.WRITE_CPU,
    SignalName.READ_POOL_ACTIVE,
    SignalName.WRITE_POOL_ACTIVE,
    SignalName.READ_POOL_WAITING,
    SignalName.WRITE_POOL_WAITING,
    SignalName.LOCK_WAITS,
    SignalName.DEADLOCKS,
    SignalName.ROWS_PER_WRITE,
)

SCALAR_SIGNALS = (
    SignalName.READ_QPS,
    SignalName.WRITE_QPS,
    SignalName.READ_LATENCY,
    SignalName.WRITE_LATENCY,
)


class Owner(StrEnum):
    """Which series of a grouped answer belong to a workload, by the template's `by` labels.

    Each kind names the workload values that make up the key, in the order of `by`
    (the first `by` label is always `namespace`).
    """

    READ_DATABASE = "read_database"  # (namespace, the pooler's read database)
    WRITE_DATABASE = "write_database"  # (namespace, the pooler's write database)
    # The "sets" are the pods' names less their ordinal (`orders-pg-replica-3` -> `orders-pg-replica`,
    # a CloudNativePG `orders-2` -> `orders`), as the templates' label_replace cuts them:
    PRIMARY_SET = "primary_set"  # (namespace, set) for the sets of the pods that are primary now
    # (namespace, set) for the sets of the replica pods when there are any, else the primary's:
    # where reads are served.
    READ_SET = "read_set"
    ALL_SETS = "all_sets"  # (namespace, set) for the sets of every pod of the workload
    REPLICA_PODS = "replica_pods"  # (namespace, pod), one value per replica pod: per-replica lag
    ALL_PODS = "all_pods"  # (namespace, pod), one value per pod: the role metric


@dataclass(frozen=True, slots=True)
class SignalTemplate:
    """One signal of a preset: a PromQL template asked once for a whole group of workloads.

    `expr` is written like a single workload's query (see promql.py); rendered for a group each
    placeholder becomes the alternation of all the group's values, and `by` must name the labels
    that `owner` needs to tell the workloads' series apart again. `fresh` is an expression with
    the same `by` labels whose value is the timestamp of the oldest newest-sample that fed the
    signal (`min by (...) (timestamp(selector))`): what the staleness bound is checked against.
    """

    expr: str
    by: tuple[str, ...]
    owner: Owner
    fresh: str | None = None
    aggregation: Aggregation = Aggregation.PERCENTILE
    # Said in the message when the answer has no series for a workload (e.g. which exporter).
    hint: str = ""
    # Several signals can share one query (a bundle, see `bundle`): each one's series carry the
    # label MEMBER_LABEL = its name, and `by` ends with that label.
    member: str | None = None


MEMBER_LABEL = "rwscaler_signal"


def bundle(
    members: dict[SignalName, tuple[str, Owner, str]], by: tuple[str, ...]
) -> dict[SignalName, SignalTemplate]:
    """One query for several signals of the same `by` labels: each member's expression (with
    its owner and hint) is labelled with its name and joined with `or`; the source asks the
    shared query once (identical queries are asked once) and splits it by that label too.
    For slow-moving signals, the key metrics: one query instead of one per signal."""
    expr = " or ".join(
        f'label_replace({member_expr}, "{MEMBER_LABEL}", "{name.value}", "", "")'
        for name, (member_expr, _owner, _hint) in members.items()
    )
    return {
        name: SignalTemplate(expr, (*by, MEMBER_LABEL), owner, hint=hint, member=name.value)
        for name, (_expr, owner, hint) in members.items()
    }
