"""loops.py's tick lateness (RWSCALER_TICK_STATS): every scheduled tick counted, an early wake not."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from rwscaler.loops import TICK_STATS_ENV, Loops


def _lateness(path: Path) -> list[float]:
    return [x for line in path.read_text().splitlines() for x in json.loads(line)["lateness"]]


async def test_each_scheduled_tick_records_how_late_it_started(tmp_path: Path) -> None:
    out = tmp_path / "ticks.jsonl"

    async def tick(ns: str, name: str) -> float | None:
        if name == "slow":
            time.sleep(0.05)  # holds the event loop: the other loop's tick starts late
            return 0.1
        return 0.11  # due just after "slow" (intervals run from a tick's start): it waits for it

    loops = Loops(tick, tick_stats=str(out))
    loops.ensure("ns", "a")
    loops.ensure("ns", "slow")
    await asyncio.sleep(0.35)
    await loops.stop_all()
    late = _lateness(out)
    assert 6 <= len(late) <= 10
    assert all(x >= 0 for x in late)
    assert max(late) >= 0.03  # "a" waited for "slow" at least once
    assert max(late) < 0.2


async def test_an_early_wake_is_not_counted(tmp_path: Path) -> None:
    out = tmp_path / "ticks.jsonl"

    async def tick(ns: str, name: str) -> float | None:
        return 60.0

    loops = Loops(tick, tick_stats=str(out))
    loops.ensure("ns", "a")
    await asyncio.sleep(0.02)
    loops.wake("ns", "a")
    await asyncio.sleep(0.02)
    await loops.stop_all()
    assert len(_lateness(out)) == 1  # the first tick only (due when the loop started)


async def test_off_without_the_variable(tmp_path: Path) -> None:
    async def tick(ns: str, name: str) -> float | None:
        return 0.01

    loops = Loops(tick)
    loops.ensure("ns", "a")
    await asyncio.sleep(0.05)
    await loops.stop_all()
    assert TICK_STATS_ENV == "RWSCALER_TICK_STATS"
    assert list(tmp_path.iterdir()) == []
