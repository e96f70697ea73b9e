"""The built-in scenarios (traces are in trace.py, which this module re-exports).

Built-in scenarios are pure functions of time plus noise from a fixed seed, so a run is
reproducible; some also carry model events (replica slowdowns for the lag storm). Each built-in scenario is `predictable` (a daily or weekly cycle, a steady climb,
a slow drift: a forecaster could see it coming) or `unpredictable` (a spike with no warning, an
outage, a lag storm, a write surge); `rwscaler bench` holds the policies to different goals on
each kind. The runner (runner.py) and the bench (command_bench.py) call `scenario`/`SCENARIOS`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from rwscaler.sim.model import Slowdown
from rwscaler.sim.trace import Kind, Row, Scenario, TraceError, load_csv

__all__ = [
    "DEFAULT_SCENARIO", "SCENARIOS", "Kind", "Row", "Scenario", "TraceError", "load_csv", "scenario",
]  # fmt: skip


def _rows(
    duration: float,
    step: float,
    reads: Callable[[float], float],
    writes: Callable[[float], float],
    seed: int,
    noise: float = 0.03,
    outage: tuple[float, float] | None = None,
) -> tuple[Row, ...]:
    rng = random.Random(seed)
    out = []
    for i in range(int(duration / step) + 1):
        t = i * step
        jitter_r, jitter_w = 1 + rng.gauss(0, noise), 1 + rng.gauss(0, noise)
        available = not (outage and outage[0] <= t < outage[1])
        out.append(Row(t, max(reads(t) * jitter_r, 0.0), max(writes(t) * jitter_w, 0.0), available))
    return tuple(out)


def _ramp(t: float, start: float, end: float, low: float, high: float) -> float:
    """low before start, high after end, linear between."""
    if t <= start:
        return low
    if t >= end:
        return high
    return low + (high - low) * (t - start) / (end - start)


def _pulse(t: float, start: float, rise: float, hold: float, fall: float, base: float, peak: float) -> float:
    up = _ramp(t, start, start + rise, base, peak)
    return (
        up
        if t < start + rise + hold
        else _ramp(t, start + rise + hold, start + rise + hold + fall, peak, base)
    )


H = 3600.0
DAY = 86400.0


def diurnal_catalog() -> Scenario:
    def reads(t: float) -> float:
        return 3500 + 2500 * math.sin(2 * math.pi * t / DAY - math.pi / 2)

    return Scenario(
        "diurnal-catalog",
        "two days of a read-heavy product catalog: reads 1,000-6,000/s following the day, ~80:1",
        _rows(2 * DAY, 60, reads, lambda t: reads(t) / 80, seed=1),
        kind="predictable",
    )


def read_flash_spike() -> Scenario:
    return Scenario(
        "read-flash-spike",
        "3 h at 2,500 reads/s; at 1 h reads jump to 6,500/s within 2 min for 20 min",
        _rows(3 * H, 15, lambda t: _pulse(t, H, 120, 1200, 300, 2500, 6500), lambda t: 50, seed=2),
        window=(H, H + 1620),
        kind="unpredictable",
    )


def write_surge() -> Scenario:
    return Scenario(
        "write-surge",
        "3 h at 2,500 reads/s; at 1 h writes surge from 300/s to 2,600/s for 30 min (reads steady)",
        _rows(3 * H, 15, lambda t: 2500, lambda t: _pulse(t, H, 120, 1800, 120, 300, 2600), seed=3),
        window=(H, H + 2040),
        kind="unpredictable",
    )


def lag_storm() -> Scenario:
    return Scenario(
        "lag-storm",
        "3 h at 3,000 reads/s and 1,200 writes/s; from 1 h to 1 h 20 replicas 0 and 1 replay at 30%",
        _rows(3 * H, 15, lambda t: 3000, lambda t: 1200, seed=4),
        slowdowns=(
            Slowdown(replica=0, start=H, end=H + 1200, applyFactor=0.3),
            Slowdown(replica=1, start=H, end=H + 1200, applyFactor=0.3),
        ),
        window=(H, H + 1200),
        kind="unpredictable",
    )


def drift_read_heavy() -> Scenario:
    def reads(t: float) -> float:
        return _ramp(t, DAY, 5 * DAY, 1500, 4500) * (1 + 0.3 * math.sin(2 * math.pi * t / DAY))

    def writes(t: float) -> float:
        return _ramp(t, DAY, 5 * DAY, 300, 40) * (1 + 0.3 * math.sin(2 * math.pi * t / DAY))

    return Scenario(
        "drift-read-heavy",
        "6 days drifting from 5:1 to ~110:1 as the product turns read-heavy (reads 1,500 -> 4,500/s)",
        _rows(6 * DAY, 300, reads, writes, seed=5),
        kind="predictable",
    )


def write_dominated_ingest() -> Scenario:
    return Scenario(
        "write-dominated-ingest",
        "6 h of log ingestion: ~1,800 writes/s with 60 reads/s, writes swinging +-20% hourly",
        _rows(6 * H, 15, lambda t: 60, lambda t: 1800 * (1 + 0.2 * math.sin(2 * math.pi * t / H)), seed=6),
        kind="predictable",  # a regular hourly swing of writes
    )


def prometheus_outage() -> Scenario:
    return Scenario(
        "prometheus-outage",
        "3 h at 2,500 reads/s; Prometheus is down from 50 min to 1 h 20 while reads ramp to 3,500/s",
        _rows(
            3 * H, 15, lambda t: _ramp(t, H, H + 600, 2500, 3500), lambda t: 50, seed=7, outage=(3000, 4800)
        ),
        window=(3000, 4800),
        kind="unpredictable",
    )


WEEK = 7 * DAY


def _step_noise(step: float) -> float:
    """Noise for a coarse step: 3% per 15 s sample, averaged over the step (3% x sqrt(15 / step)).
    Drawing 3% per 10-minute step would turn one noisy sample into ten minutes of excess load."""
    return 0.03 * math.sqrt(15.0 / step)


def _day_shape(t: float) -> float:
    """0 at 02:00, 1 at 14:00, a smooth daily swing (t in seconds from a midnight)."""
    return (1 - math.cos(2 * math.pi * (t / DAY - 2 / 24))) / 2


def daily_cycle_3d() -> Scenario:
    def reads(t: float) -> float:
        return 1000 + 4800 * _day_shape(t)

    return Scenario(
        "daily-cycle-3d",
        "3 days of the same day: reads 1,000/s at 02:00 to 5,800/s at 14:00, ~50:1 (30 s steps)",
        _rows(3 * DAY, 30, reads, lambda t: reads(t) / 50, seed=8, noise=_step_noise(30)),
        kind="predictable",
    )


RUSH_AT, RUSH_END = 8 * H, 18 * H


def morning_rush_3d() -> Scenario:
    def reads(t: float) -> float:
        return _pulse(t % DAY, RUSH_AT, 120, RUSH_END - RUSH_AT - 120, 2 * H, 1200, 5400)

    return Scenario(
        "morning-rush-3d",
        "3 days of the same day: reads 1,200/s overnight jump to 5,400/s within 2 min at 08:00 (a"
        " shop opening), back down from 18:00 to 20:00, ~50:1 (30 s steps)",
        _rows(3 * DAY, 30, reads, lambda t: reads(t) / 50, seed=13, noise=_step_noise(30)),
        kind="predictable",
    )


def steady_climb_week() -> Scenario:
    return Scenario(
        "steady-climb-week",
        "a week of reads climbing steadily from 1,500/s to 7,000/s, writes steady at 60/s (60 s steps)",
        _rows(WEEK, 60, lambda t: _ramp(t, 0, WEEK, 1500, 7000), lambda t: 60, seed=9, noise=_step_noise(60)),
        kind="predictable",
    )


def _weekday(t: float) -> bool:
    """Days 0-4 of each week (the trace starts on a Monday at midnight) are weekdays."""
    return int(t // DAY) % 7 < 5


def weekly_pattern_2w() -> Scenario:
    def reads(t: float) -> float:
        return 1000 + (4800 if _weekday(t) else 1500) * _day_shape(t)

    return Scenario(
        "weekly-pattern-2w",
        "two weeks from a Monday: weekdays 1,000-5,800 reads/s over the day, weekends 1,000-2,500/s,"
        " ~60:1 (60 s steps)",
        _rows(2 * WEEK, 60, reads, lambda t: reads(t) / 60, seed=10, noise=_step_noise(60)),
        kind="predictable",
    )


RATIO_DRIFT_WEEKS = 12
RATIO_START, RATIO_END = 100.0, 30.0


def _drift_ratio(t: float) -> float:
    """Read:write ratio falling geometrically from 100:1 to 30:1 over the 12 weeks."""
    share = min(t / (RATIO_DRIFT_WEEKS * WEEK), 1.0)
    return RATIO_START * math.exp(share * math.log(RATIO_END / RATIO_START))


def ratio_drift_12w() -> Scenario:
    def reads(t: float) -> float:
        return _ramp(t, 0, RATIO_DRIFT_WEEKS * WEEK, 2500, 3000) * (0.65 + 0.7 * _day_shape(t))

    return Scenario(
        "ratio-drift-12w",
        "12 weeks of the seed's weekly report: the read:write ratio falls from 100:1 to 30:1 as a"
        " write-heavy feature grows; reads 1,600-5,100/s over the day (300 s steps)",
        _rows(
            RATIO_DRIFT_WEEKS * WEEK,
            300,
            reads,
            lambda t: reads(t) / _drift_ratio(t),
            seed=11,
            noise=_step_noise(300),
        ),
        kind="predictable",
    )


SHIFT_AT = 11 * DAY


def write_shift_2w() -> Scenario:
    def reads(t: float) -> float:
        return 1500 + 3000 * _day_shape(t)

    def writes(t: float) -> float:
        # 60:1 for 11 days, then a new write-heavy feature doubles writes within a day: 30:1.
        return reads(t) / 60 * _ramp(t, SHIFT_AT, SHIFT_AT + DAY, 1.0, 2.0)

    return Scenario(
        "write-shift-2w",
        "two weeks of the same day (reads 1,500-4,500/s); on day 11 writes double within a day"
        " (60:1 -> 30:1): the trend rule's shift test (300 s steps)",
        _rows(2 * WEEK, 300, reads, writes, seed=14, noise=_step_noise(300)),
        window=(SHIFT_AT, 2 * WEEK),
        kind="predictable",
    )


FLASH_AT, FLASH_HOLD = 1.5 * H, 1800.0


def flash_spike_no_warning() -> Scenario:
    return Scenario(
        "flash-spike-no-warning",
        "3 h: reads flat at 1,500/s; at 1 h 30 they step to 6,000/s within one 15 s step, for 30 min",
        _rows(
            3 * H,
            15,
            lambda t: _pulse(t, FLASH_AT, 15, FLASH_HOLD, 120, 1500, 6000),
            lambda t: 30,
            seed=12,
            noise=0.02,
        ),
        window=(FLASH_AT, FLASH_AT + 15 + FLASH_HOLD + 120),
        kind="unpredictable",
    )


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "diurnal-catalog": diurnal_catalog,
    "read-flash-spike": read_flash_spike,
    "write-surge": write_surge,
    "lag-storm": lag_storm,
    "drift-read-heavy": drift_read_heavy,
    "write-dominated-ingest": write_dominated_ingest,
    "prometheus-outage": prometheus_outage,
    "daily-cycle-3d": daily_cycle_3d,
    "morning-rush-3d": morning_rush_3d,
    "steady-climb-week": steady_climb_week,
    "weekly-pattern-2w": weekly_pattern_2w,
    "ratio-drift-12w": ratio_drift_12w,
    "write-shift-2w": write_shift_2w,
    "flash-spike-no-warning": flash_spike_no_warning,
}
DEFAULT_SCENARIO = "read-flash-spike"


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]()
    except KeyError:
        raise TraceError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}") from None
