"""loops.py: one loop per workload, on its interval, woken early on demand, resilient to errors."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from rwscaler.loops import Loops, Tick


async def test_ticks_repeat_on_the_interval_and_wake_early() -> None:
    ticks: list[str] = []

    async def tick(ns: str, name: str) -> float | None:
        ticks.append(name)
        return 0.05

    loops = Loops(tick)
    loops.ensure("ns", "a")
    loops.ensure("ns", "a")  # idempotent: still one loop
    await asyncio.sleep(0.18)
    assert 3 <= ticks.count("a") <= 5
    assert loops.running() == {("ns", "a")}
    await loops.stop_all()
    assert loops.running() == set()


async def test_the_interval_runs_from_a_tick_s_start_not_its_end() -> None:
    # loops.py: a tick that takes most of its interval (waiting for a grouped read) does not push
    # the next one back by as much; one that takes longer than it is followed at once.
    starts: list[float] = []
    third = asyncio.Event()

    async def tick(ns: str, name: str) -> float | None:
        starts.append(asyncio.get_running_loop().time())
        if len(starts) == 3:
            third.set()
        await asyncio.sleep(0.4 if len(starts) < 3 else 0.7)
        return 0.5

    loops = Loops(tick)
    loops.ensure("ns", "a")
    await asyncio.wait_for(third.wait(), timeout=10)
    while len(starts) < 4:
        await asyncio.sleep(0.05)
    await loops.stop_all()
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert all(0.45 <= gap < 0.8 for gap in gaps[:2]), gaps  # from the end: 0.9
    assert 0.65 <= gaps[2] < 1.0, gaps  # from the end: 1.2


async def test_wake_ticks_without_waiting_for_the_interval() -> None:
    ticks = 0

    async def tick(ns: str, name: str) -> float | None:
        nonlocal ticks
        ticks += 1
        return 60.0

    loops = Loops(tick)
    loops.ensure("ns", "a")
    await asyncio.sleep(0.02)
    loops.wake("ns", "a")
    await asyncio.sleep(0.02)
    assert ticks == 2
    await loops.stop("ns", "a")


async def test_a_failing_tick_is_retried_with_backoff_and_a_gone_resource_ends_its_loop() -> None:
    calls = 0

    async def tick(ns: str, name: str) -> float | None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("API server hiccup")
        return None

    loops = Loops(tick, backoff_base=0.01, backoff_max=0.02)
    loops.ensure("ns", "a")
    await asyncio.sleep(0.2)
    assert calls == 3
    assert loops.running() == set()


async def test_exclusive_keeps_ticks_out() -> None:
    inside = False
    overlapped = False

    async def tick(ns: str, name: str) -> float | None:
        nonlocal overlapped
        overlapped = overlapped or inside
        return 0.01

    loops = Loops(tick)
    loops.ensure("ns", "a")
    async with loops.exclusive("ns", "a"):
        inside = True
        await asyncio.sleep(0.05)
        inside = False
    await asyncio.sleep(0.02)
    await loops.stop_all()
    assert not overlapped


class _Down(Exception):
    """Stands for an unreachable API server."""


def _fast_loops_with_outages(tick: Tick) -> Loops:
    """Loops retrying within milliseconds, with _Down as the outage (handlers._outage's role)."""
    return Loops(
        tick,
        backoff_base=0.001,
        backoff_max=0.002,
        outage=lambda err: f"Kubernetes API unavailable: {err}" if isinstance(err, _Down) else None,
    )


async def test_an_outage_is_one_line_when_it_starts_and_one_when_it_ends_for_every_loop_together(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """docs/operator.md: an outage is logged once for all workloads, without a traceback per tick."""
    down = asyncio.Event()
    down.set()
    ticks: dict[str, int] = {}
    recovered = asyncio.Event()

    async def tick(ns: str, name: str) -> float | None:
        ticks[name] = ticks.get(name, 0) + 1
        if down.is_set():
            if min(ticks.values()) >= 5 and len(ticks) == 4:
                down.clear()  # every loop failed 5 times: the API server is back
            raise _Down("connection refused")
        recovered.set()
        return 60.0

    loops = _fast_loops_with_outages(tick)
    with caplog.at_level(logging.DEBUG, logger="rwscaler.loops"):
        for name in "abcd":
            loops.ensure("ns", name)
        await asyncio.wait_for(recovered.wait(), 5)
        await asyncio.sleep(0.02)  # the other loops' first successful ticks
        await loops.stop_all()
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(";")[0] for r in loud][:1] == [
        "Kubernetes API unavailable: connection refused"
    ]
    assert len(loud) == 2 and loud[1].getMessage().startswith("outage over after"), [
        r.getMessage() for r in loud
    ]
    assert not any(r.exc_info for r in caplog.records)


async def test_another_error_is_logged_with_its_traceback_once_per_streak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def tick(ns: str, name: str) -> float | None:
        nonlocal calls
        calls += 1
        if calls <= 4:
            raise RuntimeError("a bug")
        return None

    loops = Loops(tick, backoff_base=0.001, backoff_max=0.002)
    with caplog.at_level(logging.DEBUG, logger="rwscaler.loops"):
        loops.ensure("ns", "a")
        for _ in range(200):
            if not loops.running():
                break
            await asyncio.sleep(0.005)
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert calls == 5 and len(tracebacks) == 1
    assert any("succeeds again after 4 failures" in r.getMessage() for r in caplog.records)


async def test_another_error_while_an_outage_lasts_is_part_of_it_and_reported_if_it_outlasts_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An API server just back can refuse a moment longer (403 before its authorizer has synced):
    no traceback while other ticks still fail; an error that outlasts the outage is reported."""
    down = True
    failed: dict[str, int] = {"a": 0, "b": 0}

    async def tick(ns: str, name: str) -> float | None:
        failed[name] += 1
        if name == "a":
            if down:
                raise _Down("connection refused")
            failed[name] -= 1
            return 60.0
        raise RuntimeError("403 Forbidden")

    loops = _fast_loops_with_outages(tick)
    with caplog.at_level(logging.DEBUG, logger="rwscaler.loops"):
        loops.ensure("ns", "a")
        while failed["a"] < 1:
            await asyncio.sleep(0.001)
        loops.ensure("ns", "b")
        while failed["b"] < 5:  # b fails again and again while a's outage lasts
            await asyncio.sleep(0.001)
        assert not any(r.exc_info for r in caplog.records)
        down = False
        while not any(r.exc_info for r in caplog.records):
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.02)  # more failures of b: not reported again
        await loops.stop_all()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    over = next(i for i, m in enumerate(messages) if m.startswith("outage over after"))
    tracebacks = [
        i for i, r in enumerate(r for r in caplog.records if r.levelno >= logging.WARNING) if r.exc_info
    ]
    assert len(tracebacks) == 1 and tracebacks[0] > over, messages
    assert messages[tracebacks[0]].startswith("tick of ns/b failed")


async def test_a_burst_of_settling_wakes_is_one_tick_after_the_last() -> None:
    """A script flipping a spec field 20 times is decided on once, when the flips stop."""
    ticks: list[float] = []
    done = asyncio.Event()

    async def tick(ns: str, name: str) -> float | None:
        ticks.append(asyncio.get_running_loop().time())
        if len(ticks) == 2:
            done.set()
        return 60.0

    loops = Loops(tick)
    loops.ensure("ns", "a")
    await asyncio.sleep(0)  # the first tick
    started = asyncio.get_running_loop().time()
    for _ in range(20):
        loops.wake("ns", "a", settle=0.05)
        await asyncio.sleep(0.01)
    last_wake = asyncio.get_running_loop().time()
    await asyncio.wait_for(done.wait(), 5)
    await loops.stop_all()
    assert len(ticks) == 2, "one tick for the whole burst"
    assert ticks[1] >= last_wake + 0.05 - 0.01 and ticks[1] > started
