"""loops.py at scale: a herd of first ticks is spread over the interval, a lone loop and a wake
tick at once, the ticks in flight are capped, and the failure backoff has jitter."""

from __future__ import annotations

import asyncio
import random

from rwscaler.loops import Loops, first_tick_offset


async def _until(predicate: object, timeout: float = 5.0) -> None:
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


async def test_a_herd_of_first_ticks_is_spread_over_the_window_by_a_fixed_offset_per_workload() -> None:
    first: dict[str, float] = {}
    names = [f"db{i}" for i in range(20)]

    async def tick(ns: str, name: str) -> float | None:
        first.setdefault(name, asyncio.get_running_loop().time())
        return 60.0

    spread = 0.3
    loops = Loops(tick, spread=spread, herd=2)
    start = asyncio.get_running_loop().time()
    for name in names:
        loops.ensure("ns", name)
    await _until(lambda: len(first) == len(names))
    await loops.stop_all()
    after = {name: first[name] - start for name in names}
    # The first two started with no herd before them: at once.
    assert after["db0"] < 0.05 and after["db1"] < 0.05
    # The others at their own offset in [0, spread), not all together.
    for name in names[2:]:
        offset = first_tick_offset("ns", name, spread)
        assert 0 <= offset < spread
        assert offset - 0.005 <= after[name] <= offset + 0.1, (name, offset, after[name])
    assert max(after.values()) - min(after[n] for n in names[2:]) > spread / 3


def test_the_offset_is_a_fixed_phase_per_workload() -> None:
    assert first_tick_offset("ns", "a", 15.0) == first_tick_offset("ns", "a", 15.0)
    offsets = [first_tick_offset("ns", f"db{i}", 15.0) for i in range(1000)]
    assert all(0 <= x < 15.0 for x in offsets)
    # Spread evenly: each 1.5 s tenth of the window holds about a tenth of the workloads.
    tenths = [sum(1 for x in offsets if k * 1.5 <= x < (k + 1) * 1.5) for k in range(10)]
    assert min(tenths) > 60 and max(tenths) < 140, tenths


async def test_a_loop_started_alone_ticks_at_once_and_a_spread_one_ticks_when_woken() -> None:
    ticked: dict[str, asyncio.Event] = {"alone": asyncio.Event(), "spread": asyncio.Event()}

    async def tick(ns: str, name: str) -> float | None:
        ticked[name].set()
        return 60.0

    loops = Loops(tick, spread=60.0, herd=1)
    loops.ensure("ns", "alone")  # no herd: a workload created while the operator runs
    loops.ensure("ns", "spread")  # "alone" has not ticked yet: a herd of one, so a phase of up to 60 s
    await asyncio.wait_for(ticked["alone"].wait(), 1.0)
    if first_tick_offset("ns", "spread", 60.0) > 1.0:  # it is about 42 s: deterministic
        assert not ticked["spread"].is_set()
    loops.wake("ns", "spread")  # a wake means now, phase or not
    await asyncio.wait_for(ticked["spread"].wait(), 1.0)
    await loops.stop_all()


async def test_ticks_stuck_on_a_hung_read_hold_back_no_other_workload() -> None:
    # A hundred workloads whose ticks wait on a hung Prometheus (the gate) do not delay the tick of
    # a workload on a healthy one: there is no cap on ticks in flight (loops.py, "No cap").
    gate = asyncio.Event()
    stuck = 0
    healthy = asyncio.Event()

    async def tick(ns: str, name: str) -> float | None:
        nonlocal stuck
        if name == "healthy":
            healthy.set()
            return 60.0
        stuck += 1
        await gate.wait()
        return 60.0

    loops = Loops(tick, herd=1000)  # no spreading: every first tick at once
    for i in range(100):
        loops.ensure("ns", f"hung{i}")
    await _until(lambda: stuck == 100)
    loops.ensure("ns", "healthy")
    await asyncio.wait_for(healthy.wait(), 1.0)
    entered = asyncio.Event()

    async def validate() -> None:
        async with loops.exclusive("ns", "other"):
            entered.set()

    await asyncio.wait_for(validate(), 1.0)  # nor an exclusive section of another workload
    assert entered.is_set()
    gate.set()
    await loops.stop_all()


def test_the_backoff_doubles_to_its_cap_with_jitter() -> None:
    loops = Loops(
        lambda ns, name: asyncio.sleep(0, 1.0), backoff_base=1.0, backoff_max=30.0, rng=random.Random(7)
    )
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (20, 30.0)]:
        delays = [loops.backoff(failures) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (failures, delays)
        assert max(delays) - min(delays) > ceiling / 4, "not one fixed delay for every loop"


async def test_loops_that_fail_together_retry_apart() -> None:
    """An outage fails every loop at once; without jitter they would all retry at the same instant."""
    retried: list[float] = []
    names = [f"db{i}" for i in range(10)]
    failed: set[str] = set()

    async def tick(ns: str, name: str) -> float | None:
        if name not in failed:
            failed.add(name)
            raise RuntimeError("down")
        retried.append(asyncio.get_running_loop().time())
        return 60.0

    loops = Loops(tick, backoff_base=0.2, backoff_max=0.2, herd=100, rng=random.Random(1))
    for name in names:
        loops.ensure("ns", name)
    await _until(lambda: len(retried) == len(names))
    await loops.stop_all()
    assert max(retried) - min(retried) > 0.04
