"""Per-resource reconcile loops: one asyncio task per ReadWriteWorkload, ticking on its own interval.

`rwscaler.handlers` starts a loop when kopf sees a workload and stops it when the workload is
deleted or the operator exits; the tick itself is `rwscaler.reconcile.reconcile`. Why not a kopf
timer or daemon: kopf puts a finalizer on every resource that has one, and that finalizer blocks
the deletion of a ReadWriteWorkload whenever the operator is not running. These loops need no
finalizer (owner references clean up what the operator made), and their interval follows
`spec.behavior.intervalSeconds` as it changes. The interval runs from a tick's start: a tick that
overran its interval is followed at once (a failed one by its backoff, from its end).

Each loop runs its ticks one at a time under a per-resource lock that `exclusive` also takes, so
the validation of a create/update handler never races a tick on the same resource. A tick that
raises is retried with a growing backoff (capped), never a crash loop, and logged without
flooding: an outage (what `outage` recognises, such as the API server being unreachable) is one
warning for every loop together when it starts and one line when a tick succeeds again; any other
error is logged with its traceback on the first failure of a loop's streak only. The backoff has
jitter (each delay drawn in [d/2, d] of the doubling one), so loops that failed together, as in an
outage, do not retry together and meet the same overload again.

Start-up herd. When the operator starts, kopf's initial listing calls `ensure` for every workload
at once; ticking them all immediately sends the API server N requests in the same second (at
1,000 workloads the HTTP client's pool timed out and the server answered 429). So a loop started
while `herd` or more other loops are still waiting for their first tick waits before its first tick
for a fixed offset of its own in [0, `spread`): a hash of namespace/name, the same in every process
and on every restart, so the workloads' phases spread evenly over the interval and stay there. A
loop started alone (a workload created while the operator runs, or the few workloads of a small
installation) ticks at once, as before; so does a spread one that is woken (`wake`, a pod change,
leadership: a wake means "decide now"). The create handler does not wake a loop (at a first start
over a fleet kopf calls it for every workload, which would undo the spread). `spread` defaults to 15 s, the default `intervalSeconds`: before its first tick a loop does
not know its workload's interval. A spread first tick is due at the end of its offset (that is
what the tick stats measure against).

No cap on ticks in flight. The API requests are capped where they are sent (kube/client.py: 16 at
once, the rest wait their turn), which is what kept 1,000 ticks from timing out on the HTTP pool.
A cap here would be held for the whole tick, including its wait for Prometheus: ticks of workloads
on a hung Prometheus would fill it until their timeout and stall every other workload, and the
ticks sharing one grouped read (metrics/share.py) would be served only as many at a time (with 16,
at 1,000 workloads, 6 ticks a second where 67 were due: docs/bench-operator.md).

With `RWSCALER_TICK_STATS=FILE` in the environment, each loop also notes how late every scheduled
tick starts (the time its tick begins minus the time it was due: the start of the tick before
plus its interval, or after a failure its end plus the backoff; a tick woken early is not counted), and every 10 s one JSON line
`{"time": <unix s>, "lateness": [<s>, ...]}` with the ticks since the last line is appended to
FILE (`make bench-operator` reads it; nothing goes to the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
# A tick returns the seconds until the next one, or None when the resource is gone.
Tick = Callable[[str, str], Awaitable[float | None]]
# What an exception says about the world: a short description when it is an outage every loop
# meets alike (then it is logged once for all), None for anything else.
Outage = Callable[[Exception], str | None]
TICK_STATS_ENV = "RWSCALER_TICK_STATS"
# See the module docstring (start-up herd) for why these values.
FIRST_TICK_SPREAD_S = 15.0
HERD = 16


def first_tick_offset(namespace: str, name: str, spread: float) -> float:
    """The fixed phase of a workload in [0, spread): the same for a key in every process (Python's
    `hash` of a str is salted per process, a digest is not)."""
    digest = hashlib.blake2b(f"{namespace}/{name}".encode(), digest_size=8).digest()
    return spread * int.from_bytes(digest, "big") / 2**64


def _no_outage(_: Exception) -> str | None:
    return None


@dataclass
class _OutageLog:
    """One outage at a time, shared by every loop: logged when it starts and when it ends."""

    since: float | None = None
    failed_ticks: int = 0

    def failed(self, what: str, now: float) -> None:
        self.failed_ticks += 1
        if self.since is None:
            self.since = now
            log.warning("%s; every workload's tick retries with backoff (logged again when it ends)", what)
        else:
            log.debug("still: %s", what)

    def succeeded(self, now: float) -> None:
        if self.since is not None:
            log.warning(
                "outage over after %.0fs: ticks succeed again (%d ticks failed meanwhile)",
                now - self.since,
                self.failed_ticks,
            )
            self.since, self.failed_ticks = None, 0


@dataclass
class _TickStats:
    """Lateness of the ticks (seconds), appended to a file as one JSON line per `every` seconds."""

    path: str
    every: float = 10.0
    pending: list[float] = field(default_factory=list)
    flushed_at: float = field(default_factory=time.monotonic)

    def record(self, lateness: float) -> None:
        self.pending.append(lateness)
        if time.monotonic() - self.flushed_at >= self.every:
            self.flush()

    def flush(self) -> None:
        self.flushed_at = time.monotonic()
        if self.pending:
            line = json.dumps({"time": time.time(), "lateness": [round(x, 4) for x in self.pending]})
            self.pending = []
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(line + "\n")


@dataclass
class _State:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    failures: int = 0
    reported: bool = False  # this run of failures has been logged with its traceback
    settle: asyncio.TimerHandle | None = None  # a wake waiting for a burst of wakes to end


class Loops:
    def __init__(
        self,
        tick: Tick,
        *,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        outage: Outage = _no_outage,
        tick_stats: str | None = None,
        spread: float = FIRST_TICK_SPREAD_S,
        herd: int = HERD,
        rng: random.Random | None = None,
    ) -> None:
        self._tick = tick
        stats_path = tick_stats or os.environ.get(TICK_STATS_ENV)
        self._stats = _TickStats(stats_path) if stats_path else None
        self._outage = outage
        self._outage_log = _OutageLog()
        self._states: dict[Key, _State] = {}
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._spread = spread
        self._herd = herd
        self._rng = rng or random.Random()
        # Loops started whose first tick has not begun yet: how big the herd is.
        self._starting: set[Key] = set()

    def running(self) -> set[Key]:
        return {k for k, s in self._states.items() if s.task is not None and not s.task.done()}

    def ensure(self, namespace: str, name: str) -> None:
        """Start the loop of this resource unless it is already running."""
        key = (namespace, name)
        state = self._states.setdefault(key, _State())
        if state.task is None or state.task.done():
            first_in = 0.0
            if len(self._starting) - (key in self._starting) >= self._herd:
                first_in = first_tick_offset(namespace, name, self._spread)
            self._starting.add(key)
            state.task = asyncio.create_task(
                self._run(namespace, name, state, first_in), name=f"rwscaler {namespace}/{name}"
            )

    def backoff(self, failures: int) -> float:
        """Seconds before retrying after `failures` failed ticks in a row: doubling from the base up
        to the cap, each drawn in [d/2, d] so that loops failing together spread out."""
        ceiling = min(self._backoff_base * 2 ** (failures - 1), self._backoff_max)
        return self._rng.uniform(ceiling / 2, ceiling)

    def wake(self, namespace: str, name: str, settle: float = 0.0) -> None:
        """Tick as soon as the current tick (if any) is done, instead of waiting for the interval.

        With `settle`, tick once the wakes have stopped for that long: a burst of spec edits
        (a script flipping a field) is decided on once, on the last edit, not on every flip."""
        state = self._states.get((namespace, name))
        if state is None:
            return
        if state.settle is not None:
            state.settle.cancel()
            state.settle = None
        if settle <= 0:
            state.wake.set()
        else:
            state.settle = asyncio.get_running_loop().call_later(settle, state.wake.set)

    def wake_namespace(self, namespace: str) -> None:
        """Wake the loops of one namespace (a pod there changed whether it can serve reads)."""
        for (ns, _), state in self._states.items():
            if ns == namespace:
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
        if state is not None and state.settle is not None:
            state.settle.cancel()
        if state is not None and state.task is not None:
            state.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.task

    async def stop_all(self) -> None:
        for namespace, name in list(self._states):
            await self.stop(namespace, name)
        if self._stats is not None:
            self._stats.flush()

    async def _run(self, namespace: str, name: str, state: _State, first_in: float) -> None:
        try:
            await self._ticks(namespace, name, state, first_in)
        finally:
            self._starting.discard((namespace, name))

    async def _ticks(self, namespace: str, name: str, state: _State, first_in: float) -> None:
        # When the next tick is due (loop time); None after an early wake, which is not scheduled.
        due: float | None = asyncio.get_running_loop().time() + first_in
        if first_in > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), timeout=first_in)
                due = None
        while True:
            state.wake.clear()
            async with state.lock:
                self._starting.discard((namespace, name))
                loop = asyncio.get_running_loop()
                if self._stats is not None and due is not None:
                    self._stats.record(loop.time() - due)
                started = loop.time()
                try:
                    delay = await self._tick(namespace, name)
                    if delay is not None:
                        # The interval runs from the tick's start, not its end: a tick that
                        # waited seconds for a grouped read (1,000 workloads on one Prometheus)
                        # must not push every later tick back by as much.
                        delay = max(0.0, delay - (loop.time() - started))
                    if state.failures:
                        log.info(
                            "tick of %s/%s succeeds again after %d failures", namespace, name, state.failures
                        )
                    state.failures = 0
                    state.reported = False
                    self._outage_log.succeeded(loop.time())
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    state.failures += 1
                    delay = self.backoff(state.failures)
                    outage = self._outage(err)
                    if outage is None and self._outage_log.since is not None:
                        # While other ticks still fail, an API server only just back can refuse
                        # a moment longer (403 until its authorizer has synced): the same outage.
                        # Should this error outlast it, the next failure is reported below.
                        outage = f"during the outage: {err}"
                    if outage is not None:
                        self._outage_log.failed(outage, loop.time())
                    elif not state.reported:
                        state.reported = True
                        log.exception("tick of %s/%s failed; retrying with backoff", namespace, name)
                    else:
                        log.debug(
                            "tick of %s/%s failed (%d in a row): %s", namespace, name, state.failures, err
                        )
            if delay is None:
                log.info("%s/%s is gone; its loop ends", namespace, name)
                if self._states.get((namespace, name)) is state:
                    del self._states[(namespace, name)]
                return
            due = asyncio.get_running_loop().time() + delay
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), timeout=delay)
                due = None
