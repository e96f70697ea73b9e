"""Hands the pages the C heap keeps after a burst back to the host: glibc's `malloc_trim(0)`,
every `TRIM_EVERY_S`, from a task the runtime starts (`handlers.Runtime.start`).

Why: a first start over a fleet allocates in bursts (kopf's listing of every watched kind, then
the first ticks, whose grouped reads nobody made before them), freed again within a minute.
glibc keeps the freed pages of its heap mapped and returns only the heap's top by itself, so the
operator's RSS stays at the burst. At N = 1,000 (`make bench-operator BENCH_OPERATOR_ARGS=--census`)
glibc had 318 MiB of its heap in use just after the first ticks and 36 MiB (with 336 MiB free)
30 s later, and RSS stayed at 645 MiB until trimmed to 337. `malloc_trim(0)` releases the free
pages of every arena. Python's own small-object arenas are not affected (CPython returns an
arena when it empties). On a C library without `malloc_trim` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

TRIM_EVERY_S = 60.0
# A trim that gives back at least this much is logged (at INFO): after a first start, once.
LOG_RELEASED_MIB = 32.0


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def rss_mib() -> float | None:
    """This process's resident set (Linux /proc), or None where there is none."""
    try:
        with open("/proc/self/statm") as statm:
            resident = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident * os.sysconf("SC_PAGE_SIZE") / 2**20


def trim() -> tuple[float | None, float]:
    """Trim once: (MiB released as far as RSS shows, or None when unknown; seconds it took)."""
    malloc_trim = _TRIM
    if malloc_trim is None:
        return None, 0.0
    before = rss_mib()
    started = time.perf_counter()
    malloc_trim(0)
    took = time.perf_counter() - started
    after = rss_mib()
    return (before - after if before is not None and after is not None else None), took


async def trim_forever(every_s: float = TRIM_EVERY_S) -> None:
    """Trim every `every_s` until cancelled (a trim takes milliseconds, so it runs in the loop)."""
    if _TRIM is None:
        log.debug("no malloc_trim in this C library: the heap is not trimmed")
        return
    while True:
        await asyncio.sleep(every_s)
        released, took = trim()
        if released is not None and released >= LOG_RELEASED_MIB:
            log.info(
                "gave %.0f MiB of freed heap back to the host (malloc_trim, %.0f ms)", released, took * 1000
            )


_TRIM = _malloc_trim()
