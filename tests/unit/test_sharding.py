"""The ownership rule of docs/operator.md "Sharding", recomputed here from the docs' words."""

from __future__ import annotations

import hashlib
from collections import Counter

from rwscaler.core.sharding import owner, workload_key

KEYS = [workload_key(f"ns{i % 7}", f"db{i}") for i in range(3000)]


def by_the_docs(key: str, members: list[str]) -> str:
    def weight(identity: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{identity}\n{key}".encode()).digest()[:8], "big")

    return sorted(members, key=lambda m: (-weight(m), m))[0]


def test_the_owner_is_the_one_the_docs_name() -> None:
    members = ["rwscaler-5d9f-abc_1a2b", "rwscaler-5d9f-xyz_9f8e", "op-c"]
    assert all(owner(k, members) == by_the_docs(k, members) for k in KEYS)
    assert workload_key("shop", "orders") == "shop/orders"


def test_no_member_owns_nothing_and_one_member_owns_everything() -> None:
    assert owner("shop/orders", []) is None
    assert {owner(k, ["solo"]) for k in KEYS} == {"solo"}


def test_the_order_of_members_does_not_matter() -> None:
    assert all(owner(k, ["a", "b", "c"]) == owner(k, ["c", "a", "b"]) for k in KEYS[:300])


def test_a_join_moves_only_the_share_the_new_member_gains() -> None:
    before, after = ["a", "b", "c"], ["a", "b", "c", "d"]
    moved = [k for k in KEYS if owner(k, before) != owner(k, after)]
    assert all(owner(k, after) == "d" for k in moved)
    # About a quarter of the workloads, not a reshuffle (3000 keys: well within 20-30 %).
    assert 0.20 < len(moved) / len(KEYS) < 0.30


def test_a_leave_moves_only_the_share_the_member_held() -> None:
    before, after = ["a", "b", "c"], ["a", "c"]
    moved = [k for k in KEYS if owner(k, before) != owner(k, after)]
    assert moved and all(owner(k, before) == "b" for k in moved)


def test_the_shares_are_even() -> None:
    shares = Counter(owner(k, ["a", "b", "c", "d", "e"]) for k in KEYS)
    assert set(shares) == {"a", "b", "c", "d", "e"}
    assert max(shares.values()) / min(shares.values()) < 1.25
