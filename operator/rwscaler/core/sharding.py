"""Which operator replica owns a workload: rendezvous (highest random weight) hashing.

`rwscaler.kube.shards` calls `owner` with the replicas it sees alive (their shard Leases) for every
workload a loop is about to tick; the tests recompute it from the rule in docs/operator.md
("Sharding"). The rule, for a workload `namespace/name` and the live replicas' identities:

    weight(identity) = the first 8 bytes, big-endian, of SHA-256(identity + "\\n" + namespace/name)
    owner = the identity with the largest weight (ties: the smallest identity)

Why rendezvous hashing: every replica computes the same owner from the same member set with no
coordination, and when a replica joins or leaves only the workloads it gains or held move (about
1/N of them), never a reshuffle of the others, as a hash ring would need virtual nodes to achieve.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(identity: str, key: str) -> int:
    digest = hashlib.sha256(f"{identity}\n{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def workload_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def owner(key: str, members: Iterable[str]) -> str | None:
    """The member that owns `key`, or None when there is no member."""
    best: tuple[int, str] | None = None
    for identity in members:
        w = weight(identity, key)
        if best is None or w > best[0] or (w == best[0] and identity < best[1]):
            best = (w, identity)
    return None if best is None else best[1]
