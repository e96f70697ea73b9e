"""Sharding: several operator replicas split the workloads, each acting on a disjoint set.

`rwscaler.handlers` runs `ShardMembership.run` beside kopf when the operator is started with
`--shards`; before every tick (and every create/update validation) it asks `owns(namespace, name)`
and does nothing for a workload another replica owns. docs/operator.md "Sharding" is the user's
side of what follows.

Membership. Each replica holds a coordination.k8s.io/v1 Lease of its own in the lease namespace,
named `<group>-<first 12 hex digits of SHA-256(identity)>`, labelled `rwscaler.io/shard-group:
<group>`, with its identity as holder, and renews it every retry period. Every retry period it
also lists the group's Leases. A member is alive while its Lease's record (holder and renewTime)
keeps changing: a record unchanged for `leaseDurationSeconds` on this replica's own monotonic
clock (client-go's rule, so no two clocks need agree) is a dead member, and its Lease is deleted
(with its resourceVersion as precondition) so that Leases of restarted pods do not pile up. A
record seen for the first time whose renewTime is already older than two lease durations by the
wall clock counts as dead at once, so that a replica starting next to stale Leases does not wait.

Ownership. The live members split the workloads by rendezvous hashing (`rwscaler.core.sharding`):
every member computes the same owner from the same member set, and a join or a leave moves only
the workloads the member gains or held.

Never two owners at once. A replica acts only while (a) it renewed its own Lease within the renew
deadline and (b) it listed the group within the renew deadline, so a replica that cannot reach the
API server stops acting before the others may count it dead; and (c) a lease duration has passed
since it joined (its first renewal, or its first after a lapse): by then every other member has
either listed the group since it joined (and given up the workloads it gains) or stopped acting
because its own listing is older than the renew deadline. A clean shutdown deletes the replica's
Lease after its loops have stopped, so the others take its workloads within a retry period;
a killed replica's workloads move within a lease duration plus a retry period.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rwscaler.core.sharding import owner, workload_key
from rwscaler.kube.client import KubeApiError, KubeClient
from rwscaler.kube.lease import LeaseTiming, micro_time

log = logging.getLogger(__name__)

GROUP_LABEL = "rwscaler.io/shard-group"
DEFAULT_TIMING = LeaseTiming()
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def lease_name(group: str, identity: str) -> str:
    return f"{group}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class _Seen:
    record: tuple[str, str]  # (holder, renewTime)
    at: float  # monotonic time the record was first seen as it is
    stale: bool  # already old by the wall clock when first seen


class ShardMembership:
    """This replica's Lease in the group, the live members, and which workloads it owns."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        group: str,
        identity: str,
        timing: LeaseTiming = DEFAULT_TIMING,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._namespace = namespace
        self.group = group
        self.identity = identity
        self._timing = timing
        self._monotonic = monotonic
        self._wall = wall
        self._name = lease_name(group, identity)
        self._lease: dict[str, Any] | None = None  # our Lease as last written (its resourceVersion)
        self._renewed_at: float | None = None
        self._joined_at: float | None = None
        self._listed_at: float | None = None
        self._seen: dict[str, _Seen] = {}  # Lease name -> its record
        self.members: tuple[str, ...] = ()  # the live identities, sorted
        self._acting = False
        self._changed = asyncio.Event()

    @property
    def _leases(self) -> str:
        return LEASES.format(namespace=self._namespace)

    def _fresh(self, at: float | None, now: float) -> bool:
        return at is not None and now - at < self._timing.renew_deadline_s

    def acting(self) -> bool:
        """Whether this replica may act on the workloads it owns right now (see the module doc)."""
        now = self._monotonic()
        return (
            self._fresh(self._renewed_at, now)
            and self._fresh(self._listed_at, now)
            and self._joined_at is not None
            and now - self._joined_at >= self._timing.lease_duration_s
        )

    def owns(self, namespace: str, name: str) -> bool:
        return self.acting() and owner(workload_key(namespace, name), self.members) == self.identity

    async def wait_changed(self) -> None:
        """Return at the next change of the member set or of whether this replica may act."""
        await self._changed.wait()
        self._changed.clear()

    def _body(self) -> dict[str, Any]:
        now = micro_time(self._wall())
        metadata = dict((self._lease or {}).get("metadata") or {})
        metadata.update(name=self._name, namespace=self._namespace, labels={GROUP_LABEL: self.group})
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self._timing.lease_duration_s)),
                "acquireTime": ((self._lease or {}).get("spec") or {}).get("acquireTime") or now,
                "renewTime": now,
            },
        }

    async def _write(self) -> dict[str, Any]:
        if self._lease is None:
            return await self._client.create(self._leases, self._body())
        return await self._client.request("PUT", f"{self._leases}/{self._name}", body=self._body())

    async def _renew(self) -> None:
        try:
            self._lease = await self._write()
        except KubeApiError as err:
            if not (err.not_found or err.conflict):
                raise
            # Deleted (by a member that counted this replica dead) or written by someone else:
            # start again from what is there, or from nothing.
            self._lease = await self._client.get(f"{self._leases}/{self._name}")
            self._lease = await self._write()
        now = self._monotonic()
        if not self._fresh(self._renewed_at, now):
            self._joined_at = now  # a first renewal, or the first after a lapse: wait the grace
        self._renewed_at = now

    async def _observe(self) -> None:
        listing = await self._client.request(
            "GET", self._leases, params={"labelSelector": f"{GROUP_LABEL}={self.group}"}
        )
        now, wall = self._monotonic(), self._wall()
        live: set[str] = set()
        names: set[str] = set()
        for lease in listing.get("items") or []:
            meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
            name, holder = str(meta.get("name") or ""), str(spec.get("holderIdentity") or "")
            if not name or not holder:
                continue
            names.add(name)
            record = (holder, str(spec.get("renewTime") or ""))
            duration = float(spec.get("leaseDurationSeconds") or self._timing.lease_duration_s)
            seen = self._seen.get(name)
            if seen is None or seen.record != record:
                renewed = _parse_time(record[1])
                stale = renewed is None or (wall - renewed).total_seconds() > 2 * duration
                seen = self._seen[name] = _Seen(record, now, stale if seen is None else False)
            if holder == self.identity or (not seen.stale and now - seen.at < duration):
                live.add(holder)
            else:
                await self._forget(name, meta.get("resourceVersion"))
        for gone in set(self._seen) - names:
            del self._seen[gone]
        self._listed_at = now
        members = tuple(sorted(live))
        if members != self.members:
            log.info("shards %s: members %s (this replica: %s)", self.group, list(members), self.identity)
            self.members = members
            self._changed.set()

    async def _forget(self, name: str, resource_version: object) -> None:
        """Delete a dead member's Lease (unless it was renewed meanwhile: the precondition)."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": str(resource_version)}
        with contextlib.suppress(KubeApiError):
            await self._client.request("DELETE", f"{self._leases}/{name}", body=body)
            log.info("shards %s: removed the Lease %s of a member gone silent", self.group, name)

    async def _round(self) -> None:
        try:
            await self._renew()
            await self._observe()
        except KubeApiError as err:
            log.debug("shards %s: %s", self.group, err)
        except Exception:
            # Never let membership die: a replica whose membership stopped would never act again.
            log.exception("shards %s: unexpected error; retrying", self.group)
        acting = self.acting()
        if acting != self._acting:
            self._acting = acting
            self._changed.set()
            if acting:
                log.info("shards %s: %s acts on its share of the workloads", self.group, self.identity)
            else:
                log.warning(
                    "shards %s: %s stops acting (its Lease or the group not seen within %.0fs)",
                    self.group,
                    self.identity,
                    self._timing.renew_deadline_s,
                )

    async def run(self) -> None:
        """Renew, list and judge until cancelled; then delete this replica's Lease."""
        try:
            while True:
                await self._round()
                await asyncio.sleep(self._timing.retry_period_s)
        finally:
            await asyncio.shield(self._release())

    async def _release(self) -> None:
        self._renewed_at = None
        if self._lease is None:
            return
        with contextlib.suppress(KubeApiError, OSError):
            await self._client.request("DELETE", f"{self._leases}/{self._name}")
            log.info("shards %s: %s left the group (its Lease is deleted)", self.group, self.identity)
