"""Which Secrets and ConfigMaps a workload's spec makes rwscaler use, and what a user must be allowed.

rwscaler reads Secrets and patches a ConfigMap by the names a ReadWriteWorkload gives, with its
own ServiceAccount. Without a check, anyone allowed to create a workload could make the operator
read a Secret they may not read and send it to a server of theirs (a confused deputy). The
admission webhook (`rwscaler.kube.access_review`, served by `rwscaler.handlers`) therefore asks,
for each `Access` below, whether the *requesting user* may do the same themself.

Pure: plain dicts in (the `spec` of the object under admission, as the API server sends it),
plain data out. The spec is read as a mapping, not through `core.spec`'s model, so that a spec
the model refuses (the operator then acts on nothing and says why in status) still has its
references checked: the webhook never depends on the spec being usable.

On UPDATE only the accesses whose `fingerprint` changed are checked: the reference itself or
where its content goes (for the bearer token: the URL, the CA it is trusted with, TLS
verification). A controller that edits annotations or a threshold is not blocked, and a user
cannot redirect a token someone else's reference holds without the right to read it.

docs/security.md explains the choice (a SubjectAccessReview per reference, not an opt-in label).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# The fields, as spelled in the CRD (core.spec); tests/unit/test_references.py checks that every
# SecretKeyRef and ConfigMap name of the model is one of them.
PROMETHEUS = "spec.prometheus"
BEARER_TOKEN_SECRET = "spec.prometheus.bearerTokenSecret"
CA_SECRET = "spec.prometheus.caSecret"
PGBOUNCER = "spec.pooler.pgbouncer"
ADMIN_SECRET = "spec.pooler.pgbouncer.adminSecret"
CONFIG_MAP = "spec.pooler.pgbouncer.configMap"


@dataclass(frozen=True)
class Access:
    """One thing rwscaler would do on the workload's behalf, and the right a user needs for it."""

    field: str  # the spec field that names the object, e.g. spec.prometheus.bearerTokenSecret
    verb: str  # the verb the requesting user must hold on that object: get, patch
    resource: str  # core/v1 resource: secrets, configmaps
    name: str
    purpose: str  # what rwscaler would do with it, for the rejection message
    fingerprint: tuple[str, ...]  # the reference and where its content goes; a change re-checks

    @property
    def kind_word(self) -> str:
        return {"secrets": "secret", "configmaps": "configmap"}.get(self.resource, self.resource)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _at(spec: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    node = _map(spec)
    for key in path:
        node = _map(node.get(key))
    return node


def _secret_name(ref: Mapping[str, Any]) -> str:
    return _text(ref.get("name"))


def accesses(spec: Mapping[str, Any] | None) -> tuple[Access, ...]:
    """Every Secret rwscaler would read and every ConfigMap it would write for this spec.

    Each reference counts when it is present, whatever the pooler kind: switching `kind` later
    must not start using a Secret that was never checked.
    """
    spec = _map(spec)
    found: list[Access] = []

    prom = _at(spec, "prometheus")
    url = _text(prom.get("url"))
    token = _map(prom.get("bearerTokenSecret"))
    ca = _map(prom.get("caSecret"))
    skip_verify = "insecure" if prom.get("insecureSkipVerify") is True else "verify"
    if _secret_name(token):
        found.append(
            Access(
                field=BEARER_TOKEN_SECRET,
                verb="get",
                resource="secrets",
                name=_secret_name(token),
                purpose=f"rwscaler would send its content to {PROMETHEUS}.url ({url or 'unset'})",
                fingerprint=(
                    _secret_name(token),
                    _text(token.get("key")),
                    url,
                    _secret_name(ca),
                    _text(ca.get("key")),
                    skip_verify,
                ),
            )
        )
    if _secret_name(ca):
        found.append(
            Access(
                field=CA_SECRET,
                verb="get",
                resource="secrets",
                name=_secret_name(ca),
                purpose=f"rwscaler would read it to trust {PROMETHEUS}.url's certificate",
                fingerprint=(_secret_name(ca), _text(ca.get("key"))),
            )
        )

    pgb = _at(spec, "pooler", "pgbouncer")
    deployment = _text(pgb.get("deployment"))
    port = str(pgb.get("port", ""))
    admin = _map(pgb.get("adminSecret"))
    if _secret_name(admin):
        found.append(
            Access(
                field=ADMIN_SECRET,
                verb="get",
                resource="secrets",
                name=_secret_name(admin),
                purpose=(
                    "rwscaler would log in with it to the PgBouncer admin console of the pods of "
                    f"{PGBOUNCER}.deployment ({deployment or 'unset'})"
                ),
                fingerprint=(_secret_name(admin), _text(admin.get("key")), deployment, port),
            )
        )
    config_map = _text(pgb.get("configMap"))
    if config_map:
        key = _text(pgb.get("configKey")) or "databases.ini"
        found.append(
            Access(
                field=CONFIG_MAP,
                verb="patch",
                resource="configmaps",
                name=config_map,
                purpose=f'rwscaler would write its key "{key}" ({PGBOUNCER}.configKey)',
                fingerprint=(config_map, key),
            )
        )
    return tuple(found)


def to_check(
    operation: str, new_spec: Mapping[str, Any] | None, old_spec: Mapping[str, Any] | None
) -> tuple[Access, ...]:
    """The accesses of the new spec to check: all on CREATE; on UPDATE, those that changed."""
    new = accesses(new_spec)
    if operation != "UPDATE":
        return new
    before = {(a.field, a.fingerprint) for a in accesses(old_spec)}
    return tuple(a for a in new if (a.field, a.fingerprint) not in before)


def denial(user: str, namespace: str, denied: Iterable[Access]) -> str | None:
    """One message naming, for each access the user lacks, the field, the object and the verb."""
    parts = [
        f'{a.field}: user "{user}" may not {a.verb} {a.kind_word} "{a.name}" in namespace "{namespace}"; '
        f"{a.purpose}"
        for a in denied
    ]
    return "; ".join(parts) if parts else None
