"""core/roles.py: which pod is the primary, per layout, from labels confirmed by the role metric.

Each known layout's labels are written here as the layouts' own docs give them (docs/topologies.md
cites them), not imported from the code: a label the code misreads fails here.
"""

from __future__ import annotations

import pytest

from rwscaler.core.roles import PodEvidence, Role, RoleSource, label_role, resolve_roles
from rwscaler.core.spec import LabelSelector, RoleLabels

P, R = Role.PRIMARY, Role.REPLICA


@pytest.mark.parametrize(
    ("labels", "role"),
    [
        ({"cnpg.io/cluster": "o", "cnpg.io/instanceRole": "primary"}, P),  # CloudNativePG
        ({"cnpg.io/cluster": "o", "cnpg.io/instanceRole": "replica"}, R),
        ({"cnpg.io/cluster": "o", "role": "primary"}, P),  # its legacy label
        ({"spilo-role": "master"}, P),  # Zalando / Spilo
        ({"spilo-role": "replica"}, R),
        ({"role": "primary"}, P),  # Patroni 4's role_label
        ({"role": "master"}, P),  # Patroni 3
        ({"postgres-operator.crunchydata.com/role": "master"}, P),  # Crunchy PGO, Percona PG v2
        ({"postgres-operator.crunchydata.com/role": "replica"}, R),
        ({"app": "db"}, None),  # nothing a layout says
        ({"role": "frontend"}, None),  # a `role` label with another meaning
    ],
)
def test_auto_reads_every_known_layout(labels: dict[str, str], role: Role | None) -> None:
    said = label_role(labels, RoleLabels.AUTO, None)
    assert (said[0] if said else None) is role


def test_a_scheme_reads_only_its_own_labels() -> None:
    assert label_role({"spilo-role": "master"}, RoleLabels.CLOUDNATIVEPG, None) is None
    assert label_role({"spilo-role": "master"}, RoleLabels.NONE, None) is None
    assert label_role({"spilo-role": "master"}, RoleLabels.PATRONI, None) == (P, "spilo-role=master")


def test_percona_mysql_marks_only_the_primary() -> None:
    pods = [
        PodEvidence("mysql-0", {}),
        PodEvidence("mysql-1", {"mysql.percona.com/primary": "true"}),
        PodEvidence("mysql-2", {}),
    ]
    verdict = resolve_roles(pods, RoleLabels.AUTO)
    assert verdict.primary == "mysql-1" and verdict.replicas == ("mysql-0", "mysql-2")
    assert verdict.source is RoleSource.LABEL and verdict.problem is None


def test_a_primary_selector_overrides_the_layouts() -> None:
    selector = LabelSelector(matchLabels={"tier": "writer"})
    pods = [PodEvidence("a-0", {"tier": "writer", "spilo-role": "replica"}), PodEvidence("a-1", {})]
    verdict = resolve_roles(pods, RoleLabels.AUTO, selector)
    assert verdict.primary == "a-0" and verdict.replicas == ("a-1",)


def test_the_metric_confirms_the_label() -> None:
    pods = [
        PodEvidence("db-0", {"spilo-role": "master"}, metric=P),
        PodEvidence("db-1", {"spilo-role": "replica"}, metric=R),
    ]
    verdict = resolve_roles(pods, RoleLabels.AUTO)
    assert verdict.primary == "db-0" and verdict.problem is None


def test_label_and_metric_disagreeing_make_the_role_unknown_and_hold() -> None:
    pods = [
        PodEvidence("db-0", {"spilo-role": "master"}, metric=P),
        # Promoted by hand, the label not moved yet: not a replica, not the primary.
        PodEvidence("db-1", {"spilo-role": "replica"}, metric=P),
    ]
    verdict = resolve_roles(pods, RoleLabels.AUTO)
    assert verdict.primary == "db-0" and verdict.replicas == ()
    assert [name for name, _ in verdict.unknown] == ["db-1"]
    assert (
        verdict.problem is not None and "db-1" in verdict.problem and "spilo-role=replica" in verdict.problem
    )


def test_without_labels_the_metric_decides_and_overrules_the_layout() -> None:
    pods = [
        PodEvidence("db-0", {}, in_primary_set=True),  # the old primary: down, no metric
        PodEvidence("db-replica-0", {}, metric=R),
        PodEvidence("db-replica-1", {}, metric=P),  # promoted
    ]
    verdict = resolve_roles(pods, RoleLabels.AUTO)
    assert verdict.primary == "db-replica-1" and verdict.source is RoleSource.METRIC
    assert verdict.replicas == ("db-replica-0",)
    # The silent old primary serves nothing, but a known primary is no reason to hold.
    assert [name for name, _ in verdict.unknown] == ["db-0"] and verdict.problem is None


def test_the_old_primary_back_as_a_replica_is_one() -> None:
    pods = [PodEvidence("db-0", {}, in_primary_set=True, metric=R), PodEvidence("db-replica-1", {}, metric=P)]
    verdict = resolve_roles(pods, RoleLabels.AUTO)
    assert verdict.primary == "db-replica-1" and verdict.replicas == ("db-0",)


def test_with_nothing_said_the_layout_names_the_primary() -> None:
    pods = [PodEvidence("db-0", {}, in_primary_set=True), PodEvidence("db-replica-0", {})]
    verdict = resolve_roles(pods, RoleLabels.NONE)
    assert verdict.primary == "db-0" and verdict.source is RoleSource.LAYOUT


@pytest.mark.parametrize(
    ("metrics", "problem"),
    [((R, R), "no pod is the primary"), ((P, P), "2 pods are primary (db-0, db-1)")],
)
def test_no_primary_or_several_hold(metrics: tuple[Role, Role], problem: str) -> None:
    pods = [PodEvidence(f"db-{i}", {}, metric=m) for i, m in enumerate(metrics)]
    verdict = resolve_roles(pods, RoleLabels.AUTO)
    assert verdict.primary is None and verdict.problem is not None and problem in verdict.problem
