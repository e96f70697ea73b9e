"""The admission webhook's pure side (issue 13, item 7: no confused deputy): which Secrets and
ConfigMaps a spec names, the verb each needs, what an UPDATE re-checks, the rejection message; the
SubjectAccessReview it sends (against a fake API client); `--admission-webhook` parsing.

The cluster test (tests/integration/cluster/test_cluster_confused_deputy.py) runs it for real.
"""

from __future__ import annotations

import argparse
import asyncio
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from rwscaler import command_run
from rwscaler.core import references as refs
from rwscaler.core.spec import ReadWriteWorkloadSpec, SecretKeyRef
from rwscaler.kube import access_review
from rwscaler.kube.client import KubeApiError

URL = "http://prometheus.monitoring:9090"


def full_spec(**prometheus: Any) -> dict[str, Any]:
    prom = {
        "url": URL,
        "bearerTokenSecret": {"name": "prom-token", "key": "token"},
        "caSecret": {"name": "prom-ca", "key": "ca.crt"},
    }
    prom.update(prometheus)
    return {
        "primary": {"statefulSet": "db"},
        "replicas": {"statefulSet": "db-replica", "minReplicas": 1, "maxReplicas": 3},
        "prometheus": prom,
        "pooler": {
            "kind": "PgBouncer",
            "pgbouncer": {
                "deployment": "pgbouncer",
                "configMap": "pgbouncer-databases",
                "database": "app",
                "adminSecret": {"name": "pgbouncer-admin", "key": "admin"},
            },
        },
    }


def _fields_of_type(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any]]:
    hints = typing.get_type_hints(model)
    for name in model.model_fields:
        hint = hints[name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) else ()
        for t in (hint, *args):
            yield f"{prefix}.{name}", t
            if isinstance(t, type) and issubclass(t, BaseModel):
                yield from _fields_of_type(t, f"{prefix}.{name}")


def test_every_secret_and_configmap_the_model_names_is_a_reference() -> None:
    # A new SecretKeyRef (or ConfigMap name) in core.spec must be added to core.references.
    fields = list(_fields_of_type(ReadWriteWorkloadSpec, "spec"))
    secret_fields = {path for path, t in fields if t is SecretKeyRef}
    configmap_fields = {path for path, _ in fields if path.rsplit(".", 1)[1].lower().startswith("configmap")}
    assert secret_fields == {refs.BEARER_TOKEN_SECRET, refs.CA_SECRET, refs.ADMIN_SECRET}
    assert configmap_fields == {refs.CONFIG_MAP}
    # and the example spec is one the model accepts, so the paths below are real ones
    ReadWriteWorkloadSpec.model_validate(full_spec())


def test_a_full_spec_names_three_secrets_to_get_and_one_configmap_to_patch() -> None:
    found = {(a.field, a.verb, a.resource, a.name) for a in refs.accesses(full_spec())}
    assert found == {
        (refs.BEARER_TOKEN_SECRET, "get", "secrets", "prom-token"),
        (refs.CA_SECRET, "get", "secrets", "prom-ca"),
        (refs.ADMIN_SECRET, "get", "secrets", "pgbouncer-admin"),
        (refs.CONFIG_MAP, "patch", "configmaps", "pgbouncer-databases"),
    }


@pytest.mark.parametrize(
    "spec",
    [None, {}, {"prometheus": {"url": URL}}, {"prometheus": "junk", "pooler": {"pgbouncer": 3}}],
)
def test_no_references_and_junk_name_nothing(spec: Any) -> None:
    assert refs.accesses(spec) == ()


def test_pgbouncer_references_count_whatever_the_pooler_kind() -> None:
    # Switching kind later must not start using a Secret nobody was checked for.
    spec = full_spec()
    spec["pooler"]["kind"] = "EndpointSlice"
    assert {a.field for a in refs.accesses(spec)} >= {refs.ADMIN_SECRET, refs.CONFIG_MAP}


def test_create_checks_everything() -> None:
    assert len(refs.to_check("CREATE", full_spec(), None)) == 4


def test_an_update_that_changes_no_reference_checks_nothing() -> None:
    old, new = full_spec(), full_spec()
    new["objectives"] = {"readLatencyP99": "40ms"}
    new["replicas"]["maxReplicas"] = 9
    assert refs.to_check("UPDATE", new, old) == ()


@pytest.mark.parametrize(
    ("change", "rechecked"),
    [
        # pointing the token at another server re-checks the token (not the CA)
        ({"url": "http://evil.example:9090"}, {refs.BEARER_TOKEN_SECRET}),
        # trusting another CA or none lets someone else read the token in transit
        ({"insecureSkipVerify": True}, {refs.BEARER_TOKEN_SECRET}),
        ({"caSecret": {"name": "other-ca", "key": "ca.crt"}}, {refs.BEARER_TOKEN_SECRET, refs.CA_SECRET}),
        ({"bearerTokenSecret": {"name": "prom-token", "key": "other"}}, {refs.BEARER_TOKEN_SECRET}),
    ],
)
def test_an_update_rechecks_a_token_whose_reference_or_destination_changed(
    change: dict[str, Any], rechecked: set[str]
) -> None:
    assert {a.field for a in refs.to_check("UPDATE", full_spec(**change), full_spec())} == rechecked


def test_an_update_rechecks_the_admin_secret_when_it_goes_to_another_deployment() -> None:
    new = full_spec()
    new["pooler"]["pgbouncer"]["deployment"] = "someone-elses"
    assert {a.field for a in refs.to_check("UPDATE", new, full_spec())} == {refs.ADMIN_SECRET}
    new = full_spec()
    new["pooler"]["pgbouncer"]["configKey"] = "other.ini"
    assert {a.field for a in refs.to_check("UPDATE", new, full_spec())} == {refs.CONFIG_MAP}


def test_an_update_from_an_unreadable_old_spec_checks_everything() -> None:
    assert len(refs.to_check("UPDATE", full_spec(), None)) == 4


def test_the_message_names_field_user_verb_object_namespace_and_destination() -> None:
    token = next(a for a in refs.accesses(full_spec()) if a.field == refs.BEARER_TOKEN_SECRET)
    cm = next(a for a in refs.accesses(full_spec()) if a.field == refs.CONFIG_MAP)
    assert refs.denial("alice", "shop", [token]) == (
        'spec.prometheus.bearerTokenSecret: user "alice" may not get secret "prom-token" in namespace '
        f'"shop"; rwscaler would send its content to spec.prometheus.url ({URL})'
    )
    assert refs.denial("alice", "shop", [token, cm]) == (
        f"{refs.denial('alice', 'shop', [token])}; "
        'spec.pooler.pgbouncer.configMap: user "alice" may not patch configmap "pgbouncer-databases" '
        'in namespace "shop"; rwscaler would write its key "databases.ini" (spec.pooler.pgbouncer.configKey)'
    )
    assert refs.denial("alice", "shop", []) is None


# ---- the SubjectAccessReviews, against a fake API client -------------------------------------


class FakeAuthorizer:
    """Answers SubjectAccessReviews from a set of (user, verb, resource, name) it allows."""

    def __init__(self, allowed: set[tuple[str, str, str, str]], error: KubeApiError | None = None) -> None:
        self.allowed = allowed
        self.error = error
        self.reviews: list[Mapping[str, Any]] = []

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        assert path == access_review.SAR_PATH
        self.reviews.append(body)
        if self.error is not None:
            raise self.error
        spec, attrs = body["spec"], body["spec"]["resourceAttributes"]
        key = (spec["user"], attrs["verb"], attrs["resource"], attrs["name"])
        return {"status": {"allowed": key in self.allowed}}


USER = {"username": "alice", "uid": "u-1", "groups": ["dev", "system:authenticated"], "extra": {"k": ["v"]}}


def _review(fake: FakeAuthorizer, operation: str = "CREATE", old: Any = None) -> str | None:
    return asyncio.run(
        access_review.review(fake, USER, "shop", operation, full_spec(), old)  # type: ignore[arg-type]
    )


def test_the_review_asks_as_the_requesting_user_with_groups_uid_and_extra() -> None:
    fake = FakeAuthorizer(set())
    _review(fake)
    spec = fake.reviews[0]["spec"]
    assert spec["user"] == "alice" and spec["uid"] == "u-1" and spec["extra"] == {"k": ["v"]}
    assert spec["groups"] == ["dev", "system:authenticated"]
    assert spec["resourceAttributes"] == {
        "namespace": "shop",
        "verb": "get",
        "group": "",
        "version": "v1",
        "resource": "secrets",
        "name": "prom-token",
    }


def test_a_user_with_every_right_is_admitted_and_one_without_is_told_each_missing_right() -> None:
    everything = {
        ("alice", "get", "secrets", "prom-token"),
        ("alice", "get", "secrets", "prom-ca"),
        ("alice", "get", "secrets", "pgbouncer-admin"),
        ("alice", "patch", "configmaps", "pgbouncer-databases"),
    }
    assert _review(FakeAuthorizer(everything)) is None
    message = _review(FakeAuthorizer(everything - {("alice", "get", "secrets", "pgbouncer-admin")}))
    assert message is not None and message.startswith(
        'spec.pooler.pgbouncer.adminSecret: user "alice" may not get secret "pgbouncer-admin"'
    )
    assert message.count("may not") == 1


def test_an_update_changing_nothing_asks_nothing() -> None:
    fake = FakeAuthorizer(set())
    assert _review(fake, "UPDATE", full_spec()) is None
    assert fake.reviews == []


def test_a_review_that_cannot_be_made_is_an_error_not_an_admission() -> None:
    fake = FakeAuthorizer(set(), KubeApiError(403, "Forbidden", "cannot create subjectaccessreviews"))
    with pytest.raises(access_review.ReviewError, match="create subjectaccessreviews"):
        _review(fake)


# ---- rwscaler run --admission-webhook ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"), [("127.0.0.1:9443", ("127.0.0.1", 9443)), ("[::1]:8443", ("::1", 8443))]
)
def test_listen_addresses(text: str, parsed: tuple[str, int]) -> None:
    assert command_run.parse_listen(text) == parsed


@pytest.mark.parametrize("text", ["9443", ":9443", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="ADDR:PORT"):
        command_run.parse_listen(text)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command_run.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_webhook_needs_its_certificate_and_key(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("x")
    key.write_text("x")
    assert command_run._admission(_args()) == (None, None)
    assert "needs --admission-webhook-cert" in str(
        command_run._admission(_args("--admission-webhook", "127.0.0.1:9443"))[1]
    )
    assert "need --admission-webhook" in str(
        command_run._admission(_args("--admission-webhook-cert", "x"))[1]
    )
    missing = _args(
        "--admission-webhook",
        "127.0.0.1:9443",
        "--admission-webhook-cert",
        "/nope",
        "--admission-webhook-key",
        str(key),
    )
    assert "no file /nope" in str(command_run._admission(missing)[1])
    ok = _args(
        "--admission-webhook",
        "127.0.0.1:9443",
        "--admission-webhook-cert",
        str(cert),
        "--admission-webhook-key",
        str(key),
    )
    assert command_run._admission(ok) == (("127.0.0.1", 9443, str(cert), str(key)), None)
