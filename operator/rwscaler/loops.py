"""Per-resource reconcile loops: one asyncio task per ReadWriteWorkload, ticking on its own interval.

`rwscaler.handlers` starts a loop when kopf sees a workload and stops it when the workload is
deleted or the operator exits; the tick itself is `rwscaler.reconcile.reconcile`. Why not a kopf
timer or daemon: kopf puts a finalizer on every resource that has one, and that finalizer blocks
the deletion of a ReadWriteWorkload whenever the operator is not running. These loops need no
finalizer (owner references clean up what the operator made), and their interval follows
`spec.behavior.intervalSeconds` as it changes.

Each loop runs its ticks one at a time under a per-resource lock that `exclusive` also takes, so
the validation of a create/update handler never races a tick on the same resource. A tick that
raises is logged and retried with a growing backoff (capped), never a crash loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
# A tick returns the seconds until the next one, or None when the resource is gone.
Tick = Callable[[str, str], Awaitable[float | None]]


@dataclass
class _State:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    failures: int = 0


class Loops:
    def __init__(self, tick: Tick, *, backoff_base: float = 1.0, backoff_max: float = 30.0) -> None:
        self._tick = tick
        self._states: dict[Key, _State] = {}
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max

    def running(self) -> set[Key]:
        return {k for k, s in self._states.items() if s.task is not None and not s.task.done()}

    def ensure(self, namespace: str, name: str) -> None:
        """Start the loop of this resource unless it is already running."""
        state = self._states.setdefault((namespace, name), _State())
        if state.task is None or state.task.done():
            state.task = asyncio.create_task(
                self._run(namespace, name, state), name=f"rwscaler {namespace}/{name}"
            )

    def wake(self, namespace: str, name: str) -> None:
        """Tick as soon as the current tick (if any) is done, instead of waiting for the interval."""
        state = self._states.get((namespace, name))
        if state is not None:
            state.wake.set()

    def wake_all(self) -> None:
        """Wake every loop (this replica has just become the one that acts)."""
        for state in self._states.values():
            state.wake.set()

    @contextlib.asynccontextmanager
    async def exclusive(self, namespace: str, name: str) -> AsyncIterator[None]:
        """Hold this resource's lock: no tick runs meanwhile."""
        state = self._states.setdefault((namespace, name), _State())
        async with state.lock:
            yield

    async def stop(self, namespace: str, name: str) -> None:
        state = self._states.pop((namespace, name), None)
        if state is not None and state.task is not None:
            state.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.task

    async def stop_all(self) -> None:
        for namespace, name in list(self._states):
            await self.stop(namespace, name)

    async def _run(self, namespace: str, name: str, state: _State) -> None:
        while True:
            state.wake.clear()
            async with state.lock:
                try:
                    delay = await self._tick(namespace, name)
                    state.failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception:
                    state.failures += 1
                    delay = min(self._backoff_base * 2 ** (state.failures - 1), self._backoff_max)
                    log.exception(
                        "tick of %s/%s failed (%d in a row); retrying in %.0fs",
                        namespace,
                        name,
                        state.failures,
                        delay,
                    )
            if delay is None:
                log.info("%s/%s is gone; its loop ends", namespace, name)
                if self._states.get((namespace, name)) is state:
                    del self._states[(namespace, name)]
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), timeout=delay)
