"""rwscaler.heap: the C heap's freed pages go back to the host when trimmed.

The first test builds the situation the module is for with glibc itself: many freed chunks under
one still in use at the heap's top, so glibc cannot give them back on its own (free() returns
only the top), and checks that `heap.trim` releases them and says how much.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util

import pytest

from rwscaler import heap

CHUNK = 64 * 1024  # under glibc's mmap threshold (128 KiB): these come from the heap itself
CHUNKS = 1600  # 100 MiB


def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c")
    assert name is not None
    libc = ctypes.CDLL(name)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def test_trim_gives_back_freed_heap_pages_below_a_live_chunk() -> None:
    libc = _libc()
    if not hasattr(libc, "malloc_trim"):
        pytest.fail("this test needs glibc (the machine's C library); heap.trim is a no-op elsewhere")
    heap.trim()  # start from a trimmed heap
    chunks = [libc.malloc(CHUNK) for _ in range(CHUNKS)]
    top = libc.malloc(CHUNK)  # stays in use: the freed chunks below it are not the heap's top
    assert all(chunks) and top
    for c in chunks:
        ctypes.memset(c, 1, CHUNK)  # make every page resident
    before = heap.rss_mib()
    for c in chunks:
        libc.free(c)
    freed = heap.rss_mib()
    assert before is not None and freed is not None
    try:
        # glibc kept the pages: free() alone gave back less than a tenth of them.
        assert before - freed < 10, (before, freed)
        released, took = heap.trim()
        assert released is not None and released > 80, released
        assert took < 1.0
    finally:
        libc.free(top)


def test_without_malloc_trim_nothing_is_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_TRIM", None)
    assert heap.trim() == (None, 0.0)
    # The task ends at once instead of waking every minute for nothing.
    asyncio.run(asyncio.wait_for(heap.trim_forever(every_s=3600), timeout=5))
