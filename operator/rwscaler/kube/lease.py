"""Leader election on a coordination.k8s.io/v1 Lease: with several operator replicas, one acts.

`rwscaler.handlers` runs `LeaseElector.run` beside kopf when the operator is started with
`--leader-elect`; every tick asks `holds()` first and does nothing unless it is true. The rules
are client-go's leader election, which Kubernetes' own controller-manager uses:

- A candidate takes the Lease when nobody holds it, or when the holder's record (its
  `renewTime` and holder) has not changed for `leaseDurationSeconds` as measured on the
  candidate's OWN monotonic clock since it first saw that record: no clock in the cluster has
  to agree with another.
- The holder renews every `retry_period`. If it cannot renew for `renew_deadline` (shorter than
  the lease duration) it stops acting at once, before any candidate may take over, so two
  replicas never act together. `holds()` also checks that deadline itself, so a holder that
  was frozen (SIGSTOP, a long GC pause) and wakes up after its lease expired does not act
  before its next renewal has failed.
- Every write carries the `resourceVersion` it read: when two candidates race, the API server
  answers one of them 409 Conflict and that one stays a candidate.
- On a clean shutdown the holder releases the Lease (empty holder), so a standby takes over
  within `retry_period` instead of waiting out the lease.

A killed leader (kill -9) is replaced after at most lease duration + retry period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rwscaler.kube.client import KubeApiError, KubeClient

log = logging.getLogger(__name__)

LEASE_DURATION_S = 15.0
RENEW_DEADLINE_S = 10.0
RETRY_PERIOD_S = 2.0


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    lease_duration_s: float = LEASE_DURATION_S
    renew_deadline_s: float = RENEW_DEADLINE_S
    retry_period_s: float = RETRY_PERIOD_S

    def __post_init__(self) -> None:
        if not 0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError("lease timing needs 0 < retry period < renew deadline < lease duration")


def micro_time(now: datetime) -> str:
    """metav1.MicroTime (RFC 3339 with microseconds), as Lease times are written."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Campaign for one Lease; `holds()` says whether this replica may act right now."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming = LeaseTiming(),
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._name = name
        self.identity = identity
        self._timing = timing
        self._monotonic = monotonic
        self._wall = wall
        self._renewed_at: float | None = None  # monotonic time of our last successful write
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._changed = asyncio.Event()

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self._namespace}/leases/{self._name}"

    @property
    def lease(self) -> str:
        return f"{self._namespace}/{self._name}"

    def holds(self) -> bool:
        """True while this replica holds the Lease and renewed it within the renew deadline."""
        return (
            self._renewed_at is not None
            and self._monotonic() - self._renewed_at < self._timing.renew_deadline_s
        )

    async def wait_changed(self) -> None:
        """Return at the next gain or loss of leadership."""
        await self._changed.wait()
        self._changed.clear()

    def _spec(self, transitions: int, acquire: str | None) -> dict[str, Any]:
        now = micro_time(self._wall())
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self._timing.lease_duration_s)),
            "acquireTime": acquire or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def _try_acquire_or_renew(self) -> bool:
        """One attempt; True when this replica holds the Lease afterwards."""
        lease = await self._client.get(self._path)
        now = self._monotonic()
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self._name, "namespace": self._namespace},
                "spec": self._spec(0, None),
            }
            await self._client.create(
                f"/apis/coordination.k8s.io/v1/namespaces/{self._namespace}/leases", body
            )
            return True
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self._timing.lease_duration_s)
        if holder and holder != self.identity and now - self._observed_at < duration:
            return False  # held by another replica, renewed within its lease duration
        transitions = int(spec.get("leaseTransitions") or 0)
        ours = holder == self.identity
        new_spec = self._spec(
            transitions if ours else transitions + 1, str(spec.get("acquireTime")) if ours else None
        )
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {**(lease.get("metadata") or {})},  # carries resourceVersion: optimistic lock
            "spec": new_spec,
        }
        if not ours:
            log.info("taking over lease %s from %r", self.lease, holder or None)
        await self._client.request("PUT", self._path, body=body)
        return True

    async def _attempt(self) -> bool:
        try:
            acquired = await self._try_acquire_or_renew()
        except KubeApiError as err:
            if err.conflict:
                log.debug("lease %s: another replica wrote first", self.lease)
            else:
                log.warning("lease %s: %s", self.lease, err)
            return False
        except Exception:
            # Never let the campaign die: a replica whose elector stopped would never act again.
            log.exception("lease %s: unexpected error; retrying", self.lease)
            return False
        if acquired:
            self._renewed_at = self._monotonic()
        return acquired

    def _set_leading(self, was: bool) -> bool:
        now = self.holds()
        if now != was:
            self._changed.set()
            if now:
                log.info("leading: %s holds lease %s", self.identity, self.lease)
            else:
                log.warning(
                    "not leading: %s lost lease %s (no renewal for %.0fs)",
                    self.identity,
                    self.lease,
                    self._timing.renew_deadline_s,
                )
        return now

    async def run(self) -> None:
        """Campaign and renew until cancelled; then release the Lease if this replica held it."""
        leading = False
        try:
            while True:
                await self._attempt()
                leading = self._set_leading(leading)
                await asyncio.sleep(self._timing.retry_period_s)
        finally:
            if self._renewed_at is not None:
                await asyncio.shield(self._release())

    async def _release(self) -> None:
        self._renewed_at = None
        with contextlib.suppress(KubeApiError, OSError):
            lease = await self._client.get(self._path)
            spec = (lease or {}).get("spec") or {}
            if lease is not None and spec.get("holderIdentity") == self.identity:
                released = {
                    **spec,
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "renewTime": micro_time(self._wall()),
                }
                await self._client.request("PUT", self._path, body={**lease, "spec": released})
                log.info("released lease %s", self.lease)
