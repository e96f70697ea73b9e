"""Which pod is the primary: role labels, confirmed by a metric, never the pod's ordinal.

Called by the operator's observation step (`rwscaler.observe`) with every pod of the workload;
pure, so unit tests state each layout's rule directly. Evidence per pod, strongest first:

1. a role label of a known layout (`spec.primary.roleLabels`) or `spec.primary.primarySelector`;
2. the preset's role metric (`isReplica`: 1 replica, 0 primary), which confirms the label: when
   the two disagree the pod's role is unknown (it serves no reads, and scaling holds);
3. the layout: a pod of `spec.primary.statefulSet` is the primary, any other pod a replica, and
   only while no pod is named primary by a label or the metric (the pair layout after a
   promotion: the promoted replica says so through the metric, the old primary is overruled).

Exactly one primary is the healthy case; none or several is said in `RoleVerdict.problem`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from rwscaler.core.labels import matches
from rwscaler.core.spec import LabelSelector, RoleLabels


class Role(StrEnum):
    PRIMARY = "primary"
    REPLICA = "replica"


class RoleSource(StrEnum):
    """How the primary was recognised (status.primary.source)."""

    LABEL = "Label"
    METRIC = "Metric"
    LAYOUT = "Layout"


# Each known layout's role label: key -> value -> role. Sources: CloudNativePG pkg/specs (the
# instanceRole label, and the legacy `role` it still sets); Patroni's kubernetes `role_label`
# (default `role`; `master` before Patroni 4, `primary` since) and Spilo's `spilo-role`; Crunchy
# PGO's and Percona PG v2's `postgres-operator.crunchydata.com/role`; Percona MySQL sets
# `mysql.percona.com/primary=true` on the primary only (`PRESENCE_SCHEMES`).
_CNPG = {"cnpg.io/instanceRole": {"primary": Role.PRIMARY, "replica": Role.REPLICA}}
_CNPG_LEGACY_KEY = "role"  # read only on pods that carry cnpg.io/cluster
_PATRONI = {
    "spilo-role": {"master": Role.PRIMARY, "primary": Role.PRIMARY, "replica": Role.REPLICA},
    "role": {"master": Role.PRIMARY, "primary": Role.PRIMARY, "replica": Role.REPLICA},
}
_PGO = {"postgres-operator.crunchydata.com/role": {"master": Role.PRIMARY, "replica": Role.REPLICA}}
PERCONA_MYSQL_KEY = "mysql.percona.com/primary"


def _from_table(
    table: Mapping[str, Mapping[str, Role]], labels: Mapping[str, str]
) -> tuple[Role, str] | None:
    for key, values in table.items():
        value = labels.get(key)
        if value is not None and value in values:
            return values[value], f"{key}={value}"
    return None


def _cnpg(labels: Mapping[str, str]) -> tuple[Role, str] | None:
    found = _from_table(_CNPG, labels)
    if found is None and "cnpg.io/cluster" in labels:
        found = _from_table({_CNPG_LEGACY_KEY: _CNPG["cnpg.io/instanceRole"]}, labels)
    return found


def label_role(
    labels: Mapping[str, str], scheme: RoleLabels, selector: LabelSelector | None, percona_mysql: bool = False
) -> tuple[Role, str] | None:
    """The role a pod's labels give, with the label that said it; None when they say nothing.

    `percona_mysql`: the workload's pods use Percona MySQL's presence label (some pod has it,
    or the scheme says so), so a pod without it is a replica."""
    if selector is not None:
        return (
            (Role.PRIMARY, "primarySelector")
            if matches(selector, labels)
            else (Role.REPLICA, "primarySelector")
        )
    if scheme is RoleLabels.NONE:
        return None
    if scheme in (RoleLabels.AUTO, RoleLabels.CLOUDNATIVEPG) and (found := _cnpg(labels)) is not None:
        return found
    if (
        scheme in (RoleLabels.AUTO, RoleLabels.PATRONI)
        and (found := _from_table(_PATRONI, labels)) is not None
    ):
        return found
    if (
        scheme in (RoleLabels.AUTO, RoleLabels.CRUNCHY_PGO)
        and (found := _from_table(_PGO, labels)) is not None
    ):
        return found
    if scheme in (RoleLabels.AUTO, RoleLabels.PERCONA_MYSQL) and percona_mysql:
        primary = labels.get(PERCONA_MYSQL_KEY) == "true"
        return (
            Role.PRIMARY if primary else Role.REPLICA
        ), f"{PERCONA_MYSQL_KEY}={labels.get(PERCONA_MYSQL_KEY, '(absent)')}"
    return None


@dataclass(frozen=True, slots=True)
class PodEvidence:
    """What is known of one pod's role."""

    name: str
    labels: Mapping[str, str]
    in_primary_set: bool = False  # a pod of spec.primary.statefulSet (the layout's word)
    metric: Role | None = None  # the role metric's word; None: no current sample


@dataclass(frozen=True, slots=True)
class RoleVerdict:
    primaries: tuple[str, ...]
    replicas: tuple[str, ...]
    unknown: tuple[tuple[str, str], ...] = ()  # (pod, why its role is unknown)
    source: RoleSource | None = None  # how the primary was recognised (None: no single primary)
    problem: str | None = None  # why scaling must hold: no primary, several, a disagreement

    @property
    def primary(self) -> str | None:
        return self.primaries[0] if len(self.primaries) == 1 else None


def resolve_roles(
    pods: Sequence[PodEvidence], scheme: RoleLabels, selector: LabelSelector | None = None
) -> RoleVerdict:
    """Every pod's role from its evidence, and whether the workload has exactly one primary."""
    percona = scheme is RoleLabels.PERCONA_MYSQL or (
        scheme is RoleLabels.AUTO and any(p.labels.get(PERCONA_MYSQL_KEY) == "true" for p in pods)
    )
    roles: dict[str, tuple[Role, RoleSource]] = {}
    unknown: list[tuple[str, str]] = []
    conflicts: list[str] = []  # label and metric disagree: the one kind of unknown that holds
    for pod in pods:
        said = label_role(pod.labels, scheme, selector, percona)
        if said is not None:
            role, label = said
            if pod.metric is not None and pod.metric is not role:
                why = f"its label {label} says {role}, its role metric says {pod.metric}"
                unknown.append((pod.name, why))
                conflicts.append(f"the role of {pod.name} is unknown: {why}")
                continue
            roles[pod.name] = (role, RoleSource.LABEL)
        elif pod.metric is not None:
            roles[pod.name] = (pod.metric, RoleSource.METRIC)
    named_primary = any(role is Role.PRIMARY for role, _ in roles.values())
    for pod in pods:
        if pod.name in roles or pod.name in dict(unknown):
            continue
        if not pod.in_primary_set:
            roles[pod.name] = (Role.REPLICA, RoleSource.LAYOUT)
        elif named_primary:
            # The layout's primary, overruled: another pod is primary by its label or metric
            # (a promotion); this one says nothing of itself (down, not scraped yet).
            unknown.append(
                (pod.name, "it is in primary.statefulSet, but another pod reports itself the primary")
            )
        else:
            roles[pod.name] = (Role.PRIMARY, RoleSource.LAYOUT)
    primaries = tuple(sorted(name for name, (role, _) in roles.items() if role is Role.PRIMARY))
    replicas = tuple(sorted(name for name, (role, _) in roles.items() if role is Role.REPLICA))
    problems = conflicts
    source = None
    if len(primaries) == 1:
        source = roles[primaries[0]][1]
    elif primaries:
        problems.insert(0, f"{len(primaries)} pods are primary ({', '.join(primaries)})")
    else:
        problems.insert(0, "no pod is the primary")
    return RoleVerdict(primaries, replicas, tuple(unknown), source, "; ".join(problems) or None)
