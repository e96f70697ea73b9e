"""`Watched`: the watch's object, with the operator's own write laid over until the watch delivers
it (the rules of kube/watch_cache.py's docstring)."""

from __future__ import annotations

from typing import Any

from rwscaler.kube.watch_cache import OVERLAY_MAX_S, Watched


def obj(rv: str, replicas: int) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": rv}, "spec": {"replicas": replicas}}


class World:
    def __init__(self) -> None:
        self.watch: dict[tuple[str, str], dict[str, Any]] = {}
        self.now = 0.0
        self.cache = Watched(lambda ns, n: self.watch.get((ns, n)), clock=lambda: self.now)


def test_without_writes_the_watch_is_the_answer() -> None:
    w = World()
    assert w.cache.get("ns", "db") is None
    w.watch[("ns", "db")] = obj("5", 2)
    assert w.cache.get("ns", "db") == obj("5", 2)


def test_a_write_is_served_until_the_watch_delivers_something_newer() -> None:
    w = World()
    w.watch[("ns", "db")] = obj("5", 2)
    w.cache.wrote("ns", "db", "5", obj("6", 3))
    assert w.cache.get("ns", "db") == obj("6", 3)  # the watch still shows version 5
    assert w.cache.get("ns", "db") == obj("6", 3)
    w.watch[("ns", "db")] = obj("6", 3)
    assert w.cache.get("ns", "db") == obj("6", 3)
    # Someone else changes it afterwards: the watch is the answer again, the overlay is gone.
    w.watch[("ns", "db")] = obj("7", 5)
    assert w.cache.get("ns", "db") == obj("7", 5)


def test_a_newer_change_by_someone_else_wins_over_the_write() -> None:
    w = World()
    w.watch[("ns", "db")] = obj("5", 2)
    w.cache.wrote("ns", "db", "5", obj("6", 3))
    w.watch[("ns", "db")] = obj("8", 1)  # 6 and then 8 delivered together
    assert w.cache.get("ns", "db") == obj("8", 1)


def test_a_deleted_object_is_gone_even_with_a_write_laid_over() -> None:
    w = World()
    w.watch[("ns", "db")] = obj("5", 2)
    w.cache.wrote("ns", "db", "5", obj("6", 3))
    del w.watch[("ns", "db")]
    assert w.cache.get("ns", "db") is None


def test_an_object_created_by_the_write_is_served_before_the_watch_has_it() -> None:
    w = World()
    w.cache.wrote("ns", "db", None, obj("1", 1))
    assert w.cache.get("ns", "db") == obj("1", 1)


def test_an_old_overlay_expires() -> None:
    w = World()
    w.watch[("ns", "db")] = obj("5", 2)
    w.cache.wrote("ns", "db", "5", obj("6", 3))
    w.now += OVERLAY_MAX_S + 1
    assert w.cache.get("ns", "db") == obj("5", 2)


def test_an_overlay_never_read_again_is_dropped_once_past_its_age() -> None:
    # A workload deleted right after its last status write is never read again: its overlay
    # must not stay for the life of the process (the soak deletes one every 3 s).
    w = World()
    for i in range(100):
        w.cache.wrote("ns", f"gone-{i}", "5", obj("6", 3))
    w.now += OVERLAY_MAX_S + 1
    w.cache.wrote("ns", "db", "5", obj("6", 3))
    assert len(w.cache) == 1
    # Kept at most about twice their age (the pass runs at most once per OVERLAY_MAX_S).
    for step in range(1, 200):
        w.now += 1
        w.cache.wrote("ns", f"later-{step}", "5", obj("6", 3))
        assert len(w.cache) <= 2 * OVERLAY_MAX_S + 1
