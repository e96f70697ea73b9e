"""Figures a test measures and the run should show (a takeover time, an image size).

A test calls `record("HA takeover", "14.2 s (bound: 30 s)")`; `tests/conftest.py` prints every
recorded figure in pytest's terminal summary, so CI's output carries them without `-s`.
"""

from __future__ import annotations

FIGURES: list[tuple[str, str]] = []


def record(name: str, value: str) -> None:
    FIGURES.append((name, value))
