"""loops.py: one loop per workload, on its interval, woken early on demand, resilient to errors."""

from __future__ import annotations

import asyncio

from rwscaler.loops import Loops


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
