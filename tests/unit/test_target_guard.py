"""core/target_guard.py: what the scale target and the roles allow of a stabilized count.

The rules as docs/topologies.md states them: never remove the primary's pod (scale in only as far
as keeps it), never scale in a target whose choice of pod cannot be foreseen, hold while the roles
are not known for sure; each says ScalingLimited with its reason.
"""

from __future__ import annotations

import pytest

from rwscaler.core.observation import Observation, Signal
from rwscaler.core.sizing import Stabilized
from rwscaler.core.target_guard import guard_scale

ZERO = Signal.of(0.0)


def obs(current: int, **kw: object) -> Observation:
    return Observation(ZERO, ZERO, ZERO, ZERO, current, "db-3", **kw)  # type: ignore[arg-type]


def stable(desired: int) -> Stabilized:
    return Stabilized(desired=desired, history=(), limited=(), reasons=())


@pytest.mark.parametrize(
    ("current", "desired", "primary_rank", "kept"),
    [
        (4, 1, 2, 3),  # ranks 1..3 would go; the primary is rank 2: keep 3, remove rank 3 only
        (3, 1, 2, 3),  # rank 2 is the first to go: no scale-in at all
        (4, 3, 2, 3),  # rank 3 goes, the primary stays: allowed as it is
        (2, 5, 0, 5),  # a scale-up never removes anything
    ],
)
def test_a_scale_in_never_removes_the_primary(
    current: int, desired: int, primary_rank: int, kept: int
) -> None:
    got = guard_scale(obs(current, primary_rank=primary_rank), stable(desired))
    assert got.desired == kept
    assert ("PrimaryWouldBeRemoved" in got.limited) is (kept != desired)
    if kept != desired:
        assert "db-3" in got.detail


def test_a_target_that_never_removes_the_primary_is_not_limited() -> None:
    assert guard_scale(obs(4, primary_rank=None), stable(1)).desired == 1


def test_an_unforeseeable_removal_order_allows_scale_up_only() -> None:
    down = guard_scale(obs(3, removal_order_known=False), stable(2))
    assert down.desired == 3 and down.limited == ("RemovalOrderUnknown",)
    assert guard_scale(obs(3, removal_order_known=False), stable(4)).desired == 4


def test_unknown_roles_hold_and_say_so_even_when_nothing_would_change() -> None:
    for desired in (1, 3, 5):
        got = guard_scale(obs(3, roles_problem="2 pods are primary (db-0, db-1)"), stable(desired))
        assert got.desired == 3 and got.limited[0] == "RoleUnknown"
        assert "2 pods are primary" in got.detail
