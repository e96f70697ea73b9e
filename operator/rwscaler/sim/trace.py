"""Traces: the rows a simulation steps through, the scenario that carries them, and CSV loading.

A trace is rows of (t, read_qps, write_qps, metrics_available); t is seconds from the start and
the row spacing is the simulation step. scenarios.py builds the built-in ones; runner.py loads
CSV files with `load_csv`; the engine (engine.py) steps through `Scenario.rows`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rwscaler.sim.model import Slowdown

Kind = Literal["predictable", "unpredictable", "unclassified"]


@dataclass(frozen=True, slots=True)
class Row:
    t: float
    read_qps: float
    write_qps: float
    metrics_available: bool = True


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    rows: tuple[Row, ...]
    slowdowns: tuple[Slowdown, ...] = field(default=())
    # The window a scenario is about (the surge, the storm, the outage), for reports.
    window: tuple[float, float] | None = None
    kind: Kind = "unclassified"  # built-ins say; a CSV trace is unclassified

    @property
    def step(self) -> float:
        return self.rows[1].t - self.rows[0].t if len(self.rows) > 1 else 15.0


class TraceError(ValueError):
    """A trace file that cannot be used, with the line and the reason."""


def load_csv(path: Path) -> Scenario:
    try:
        handle = path.open(newline="")
    except OSError as err:
        raise TraceError(f"{path}: cannot read: {err.strerror}") from err
    with handle:
        reader = csv.DictReader(handle)
        missing = {"t", "read_qps", "write_qps"} - set(reader.fieldnames or [])
        if missing:
            raise TraceError(
                f"{path}: header needs t,read_qps,write_qps; missing {', '.join(sorted(missing))}"
            )
        rows: list[Row] = []
        for line, rec in enumerate(reader, start=2):
            try:
                t, r, w = float(rec["t"]), float(rec["read_qps"]), float(rec["write_qps"])
                avail = rec.get("metrics_available")
                available = True if avail in (None, "") else {"1": True, "0": False}[avail.strip()]
            except (KeyError, ValueError, TypeError) as err:
                raise TraceError(
                    f"{path}:{line}: bad value ({err}); expected numbers and metrics_available 1 or 0"
                ) from err
            if r < 0 or w < 0 or not all(map(math.isfinite, (t, r, w))):
                raise TraceError(f"{path}:{line}: rates must be finite and not negative")
            if rows and t <= rows[-1].t:
                raise TraceError(f"{path}:{line}: t must increase (got {t} after {rows[-1].t})")
            rows.append(Row(t, r, w, available))
    if len(rows) < 2:
        raise TraceError(f"{path}: needs at least two rows")
    return Scenario(path.stem, f"trace {path}", tuple(rows))
