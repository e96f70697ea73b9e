"""Objects as the operator's watches last delivered them, with its own writes laid over until the
watch catches up: what a tick reads instead of a GET.

`rwscaler.handlers` feeds one `Watched` per kind from kopf (the workloads from the event handler
that already receives each of them; the StatefulSets, the read Services and rwscaler's
EndpointSlices from kopf indices over the watched namespaces; all listed once and then followed);
`KubeCluster.get_workload`, the StatefulSet scale target and the EndpointSlice router read from
it, and record each write they make (`wrote`).

Why the overlay: a watch delivers an object some milliseconds after the write that changed it. A
tick that runs in between (a wake right after a scale, say) would read the object as it was before
the write: a status it has already replaced (and a resourceVersion that makes its next status
patch a 409), or a replica count it has already changed (and scale again, with a second event).
So the answer of each write (the object as the API server stored it) is kept and served instead
until the watch delivers anything other than the version the write was made from; then the watch
is right again (it holds the write, or something newer) and the overlay is dropped. An overlay
older than `OVERLAY_MAX_S` is dropped too: by then the watch has caught up or the object is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# What the watch holds for (namespace, name), or None.
Lookup = Callable[[str, str], Mapping[str, Any] | None]
OVERLAY_MAX_S = 60.0


def resource_version(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return str(rv) if rv else None


@dataclass
class _Written:
    before: str | None  # the resourceVersion the write was made from
    obj: dict[str, Any]  # the object as the write's answer gave it
    at: float


class Watched:
    def __init__(self, lookup: Lookup, clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._clock = clock
        self._written: dict[tuple[str, str], _Written] = {}
        self._swept_at = clock()

    def get(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        watched = self._lookup(namespace, name)
        key = (namespace, name)
        written = self._written.get(key)
        if written is None:
            return watched
        fresh = self._clock() - written.at < OVERLAY_MAX_S
        if fresh and watched is not None and resource_version(watched) == written.before:
            return written.obj  # the watch has not delivered the write yet
        if fresh and watched is None and written.before is None:
            return written.obj  # created by the write, not delivered yet
        del self._written[key]
        return watched

    def __len__(self) -> int:
        """How many overlays are kept."""
        return len(self._written)

    def wrote(self, namespace: str, name: str, before: str | None, answer: Mapping[str, Any]) -> None:
        """A write changed the object from version `before`; `answer` is what the server stored."""
        now = self._clock()
        # Overlays past their age are dropped here too, not only when read: an object deleted
        # right after a write (a workload's last status) is never read again, and its overlay
        # would otherwise stay for the life of the process. At most once per OVERLAY_MAX_S, so a
        # write does not pay a pass over every overlay of the last minute (hundreds in a fleet).
        if now - self._swept_at >= OVERLAY_MAX_S:
            self._written = {k: w for k, w in self._written.items() if now - w.at < OVERLAY_MAX_S}
            self._swept_at = now
        self._written[(namespace, name)] = _Written(before, dict(answer), now)
