"""HTTP exchanges that a caller may stop waiting for but never interrupts.

Used by the two httpx clients of the operator: `rwscaler.metrics.client.PrometheusClient` (a query
abandoned at its deadline) and `rwscaler.kube.client.KubeClient` (a request whose tick is cancelled
when its workload is deleted).

Why: httpcore 1.0.9, under httpx, can lose a pooled connection when the task awaiting a request is
cancelled at the wrong moment: while the request is queued for a connection and the pool has just
given it a new one (encode/httpcore#1093: the connection stays CONNECTING, owned by nobody), or
when a second cancellation interrupts the cleanup of the first (encode/httpcore#1115: the stream is
marked closed before its cleanup ran, so the connection stays ACTIVE with its socket open). Such a
connection is never reused and never closed: its socket sits in CLOSE-WAIT once the server hangs
up, and it keeps its pool slot, so a client that loses `max_connections` of them fails every
request (PoolTimeout) until it is replaced.

So each exchange runs in a task of its own that nobody outside this module cancels: the caller
waits for it until its own deadline, and its own cancellation only stops the waiting. What ends
an exchange that nobody waits for any more:

- httpx's timeouts (pool, connect, write, read): each bounds one wait, a read timeout one read;
- `cut_after`, for a server that sends a byte now and then and so never lets one read time out:
  at that moment the exchange's task is cancelled once, but only while the request is on the wire
  and its answer awaited (between httpcore's `receive_response_headers.started` and
  `response_closed.started` trace events, HTTP/1.1). There the single cancellation meets
  httpcore's own cleanup, which closes that connection and takes it out of the pool; the states
  the issues above describe (queued, connecting, closing) are outside that window;
- `aclose()`, which cancels what is left and then closes the client and every connection it holds.

The exchanges in flight hold a slot of the given semaphore until they really end, abandoned or
not: it bounds the requests a server actually has to serve, not the callers still waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["Exchanges"]

# httpcore's trace events (the `trace` request extension) that open and close the window in which
# cancelling an exchange once is cleaned up by httpcore itself (see the module docstring).
_ANSWER_AWAITED = "http11.receive_response_headers.started"
_CLOSING = "http11.response_closed.started"


class _Cut:
    """The deadline of one exchange: armed while its answer is awaited, disarmed before cleanup."""

    def __init__(self, task: asyncio.Task[Any], at: float | None) -> None:
        self._task = task
        self._at = at
        self._timer: asyncio.TimerHandle | None = None
        self.fired = False

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        # Called by httpcore inside the exchange's own task, without suspending it: nothing can run
        # between the event and the arming or disarming of the timer.
        if event == _ANSWER_AWAITED and self._at is not None:
            self.disarm()
            self._timer = asyncio.get_running_loop().call_at(self._at, self._fire)
        elif event == _CLOSING:
            self.disarm()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self.fired = True
        self._task.cancel()


class Exchanges:
    """The exchanges of one httpx client: sent in tasks of their own, at most `limit` at once."""

    def __init__(self, http: httpx.AsyncClient, limit: asyncio.Semaphore) -> None:
        self.http = http
        self._limit = limit
        # Strong references: the event loop keeps only weak ones to tasks nobody awaits any more.
        self._running: set[asyncio.Task[httpx.Response]] = set()

    async def send(
        self, request: httpx.Request, *, wait: float | None, cut_after: float | None
    ) -> httpx.Response:
        """Send `request` and read its whole answer.

        Waits for a slot of the limit first, for as long as it takes; then at most `wait` seconds
        for the answer (TimeoutError after that; None: until the exchange ends). The exchange
        itself is cut `cut_after` seconds after it got its slot (httpx.ReadTimeout), whether or not
        anybody still waits for it; None: only httpx's timeouts end it. Raises what httpx raises,
        and httpx.TransportError if `aclose()` stopped the exchange.
        """
        await self._limit.acquire()
        # No await between acquiring and handing the slot over to the task: a cancellation of the
        # caller here cannot lose the slot.
        loop = asyncio.get_running_loop()
        cut_at = None if cut_after is None else loop.time() + cut_after
        task = loop.create_task(self._exchange(request, cut_at))
        self._running.add(task)
        task.add_done_callback(self._ended)
        # asyncio.wait never cancels what it waits for, on a timeout or when the caller is cancelled.
        done, _ = await asyncio.wait({task}, timeout=wait)
        if not done:
            raise TimeoutError(f"no answer within {wait:g}s")
        if task.cancelled():  # only aclose() cancels an exchange from outside
            raise httpx.TransportError("the client was closed", request=request)
        return task.result()

    async def _exchange(self, request: httpx.Request, cut_at: float | None) -> httpx.Response:
        task = asyncio.current_task()
        assert task is not None
        cut = _Cut(task, cut_at)
        request.extensions = {**request.extensions, "trace": cut.trace}
        try:
            return await self.http.send(request)
        except asyncio.CancelledError:
            if not cut.fired:
                raise
            # The cancellation was this exchange's own deadline, not a request to stop the task.
            task.uncancel()
            raise httpx.ReadTimeout("the answer took too long and was cut", request=request) from None
        finally:
            cut.disarm()

    def _ended(self, task: asyncio.Task[httpx.Response]) -> None:
        self._running.discard(task)
        self._limit.release()
        if not task.cancelled():
            # Marks the failure of an abandoned exchange as seen (no "exception was never
            # retrieved" at exit): its caller has already been answered with a timeout.
            task.exception()

    async def aclose(self) -> None:
        """Stop every exchange still in flight, then close the client and all its connections."""
        running = list(self._running)
        for task in running:
            task.cancel()
        try:
            await asyncio.gather(*running, return_exceptions=True)
        finally:
            # Closing the pool closes every connection in it, including any a cancellation has
            # just left behind: nothing outlives the client.
            await self.http.aclose()
