"""SubjectAccessReviews for the admission webhook: may the requesting user use what a spec names?

`rwscaler.handlers` serves a validating webhook on ReadWriteWorkloads (`rwscaler run
--admission-webhook`) and calls `review` with the request's `userInfo`. For each access
`rwscaler.core.references.to_check` lists (every Secret rwscaler would read, the ConfigMap it would
patch), one SubjectAccessReview (authorization.k8s.io/v1) asks the API server whether that user,
with their groups, uid and extra attributes, may do it in the workload's namespace. The answer is
the message to reject with, or None to admit.

A review the API server does not answer (unreachable, forbidden: the operator lacks `create
subjectaccessreviews`) raises `ReviewError`: the webhook then refuses the request, since
admitting what it could not check would reopen the hole it closes (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rwscaler.core import references
from rwscaler.kube.client import KubeApiError, KubeClient

SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


class ReviewError(Exception):
    """A SubjectAccessReview could not be made; the message says which and why."""


def review_body(userinfo: Mapping[str, Any], namespace: str, access: references.Access) -> dict[str, Any]:
    """The SubjectAccessReview asking whether this user may do `access` in `namespace`."""
    spec: dict[str, Any] = {
        "resourceAttributes": {
            "namespace": namespace,
            "verb": access.verb,
            "group": "",
            "version": "v1",
            "resource": access.resource,
            "name": access.name,
        },
        "user": str(userinfo.get("username") or ""),
    }
    groups = userinfo.get("groups")
    if groups:
        spec["groups"] = [str(g) for g in groups]
    if userinfo.get("uid"):
        spec["uid"] = str(userinfo["uid"])
    extra = userinfo.get("extra")
    if isinstance(extra, Mapping) and extra:
        spec["extra"] = {str(k): [str(v) for v in vs] for k, vs in extra.items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


async def allowed(
    client: KubeClient, userinfo: Mapping[str, Any], namespace: str, access: references.Access
) -> bool:
    try:
        result = await client.create(SAR_PATH, review_body(userinfo, namespace, access))
    except KubeApiError as err:
        hint = " (the operator needs `create subjectaccessreviews`)" if err.forbidden else ""
        raise ReviewError(
            f"could not check whether the user may {access.verb} {access.kind_word} "
            f'"{access.name}" ({access.field}): {err}{hint}'
        ) from err
    status = result.get("status")
    return isinstance(status, Mapping) and status.get("allowed") is True


async def review(
    client: KubeClient,
    userinfo: Mapping[str, Any],
    namespace: str,
    operation: str,
    new_spec: Mapping[str, Any] | None,
    old_spec: Mapping[str, Any] | None,
) -> str | None:
    """The rejection message when the user lacks a right the spec would lend them, else None."""
    denied = [
        access
        for access in references.to_check(operation, new_spec, old_spec)
        if not await allowed(client, userinfo, namespace, access)
    ]
    return references.denial(str(userinfo.get("username") or "(unknown)"), namespace, denied)
