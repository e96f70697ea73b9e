"""What a simulated policy returns each step, and the interface every policy implements.

The engine (engine.py) calls `Policy.decide` once per step; the policies live in policies.py and
keda_qps.py. Separate from them so a policy module can import it without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from rwscaler.core.observation import Observation
from rwscaler.core.plan import Plan


@dataclass(frozen=True)
class Decision:
    target: int
    pool: list[int] | None  # replica ordinals serving reads; None: every ready replica; []: the primary
    workload_class: str
    conditions: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    plan: Plan | None = None


class Policy(Protocol):
    name: str

    def decide(self, index: int, t: float, obs: Observation) -> Decision: ...
