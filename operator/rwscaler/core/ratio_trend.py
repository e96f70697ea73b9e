"""The trend rules "reads gaining share" and "writes gaining share", on the seed's time scale.

The seed's weekly workload report (section 7) judges the read:write ratio from one point a week
over 12 weeks ("Trend: Ratio declining (more writes proportionally)"). This module makes that
judgement from `RatioHistory` (observation.py), which the metrics adapter reads from Prometheus's
history, with two tests:

  - the slope test: a least-squares line through log10(ratio) against the point's index; it
    fires when the line moves by at least CHANGE_LOG10 over the known points' span and explains
    at least MIN_R2 of their variance (a consistent trend, not noise or one odd week). It is
    tried on the whole window, then on its recent half (the newest ceil(n/2) points): the seed's
    chart as drawn rises to 100:1 by week 4 and falls to 30:1 by week 9 ("Trend: Ratio
    declining"), which no single line through all 12 weeks fits (R² 0.2), while its recent half
    is a clear fall; the whole window, when it fires, wins (a longer trend is stronger evidence);
  - the shift test: the ratio over the last `shift_s` against the same span one period earlier;
    it fires when they differ by at least SHIFT_LOG10, so a change within days is not left to
    wait for weeks of points.

Ratio rising is reads gaining share (+1), falling is writes gaining share (-1). When the two
tests fire in opposite directions the evidence conflicts and neither side is judged to gain.

Pure (no I/O, no clock): `decide.py` calls `ratio_trend` every tick and the workload report will
call it later; both show `RatioTrend.message` as the reason. It replaced an average kept tick by
tick (a 4-hour against a 1-day one), which never saw a 12-week drift and forgot it on restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rwscaler.core.durations import format_seconds
from rwscaler.core.observation import RatioHistory

# Fewer points than this cannot show a trend: two points always lie on a line (R² 1), and with
# three or four one odd end week alone explains 75% or 60% of the variance; from five on it
# explains at most half, so the R² guard holds.
MIN_POINTS = 5
# The fitted line must move by a factor of 10**0.2 = 1.58 over the window: the seed's drift (100:1
# to 30:1 over 12 weeks, -0.52) is well past it, week-to-week noise of a few percent is far under.
CHANGE_LOG10 = 0.2
# The line must explain at least 60% of the points' variance: a steady drift does (the seed's is
# 0.99 with 5% weekly noise), while a flat series with noise, or flat weeks with one odd week, do
# not, however large the odd week (one odd week among 12 explains at most 23%; the guard holds from
# 5 known points on, while at 3 or 4 an odd end week explains 75% or exactly 60%).
MIN_R2 = 0.6
# The recent ratio must differ by a factor of 10**0.2 = 1.58 from the same span one period
# earlier: writes doubling within the shift span (-0.30) fires; a weekly cycle compares like with
# like (the same days of the week), so it stays near 0.
SHIFT_LOG10 = 0.2

# Below this, the points' variance is rounding error: the series is flat, there is no trend to
# explain and R² is reported as 0.
_FLAT_VARIANCE = 1e-12

_WEEK_S = 7 * 86400
_UNITS = ((_WEEK_S, "week"), (86400, "day"), (3600, "hour"), (60, "minute"))


@dataclass(frozen=True, slots=True)
class RatioTrend:
    """The verdict of the trend rules, with their inputs for the reason."""

    direction: int  # +1 reads gaining share, -1 writes gaining share, 0 neither (or unknown)
    known: bool  # False: fewer than MIN_POINTS known points and no shift measured
    change_log10: float | None  # fitted change of log10(ratio) over the known points' span
    fit_r2: float | None
    shift_log10: float | None  # log10(recent / recent_before)
    points: int  # known points used
    message: str  # one sentence for a Reason


@dataclass(frozen=True, slots=True)
class _Fit:
    change_log10: float  # the line's change from the first known index to the last
    r2: float
    start: float  # the line's log10(ratio) at the first known index
    span_periods: int  # last known index - first known index


def ratio_trend(history: RatioHistory | None) -> RatioTrend:
    """Whether reads or writes are gaining share of the traffic (see the module docstring)."""
    if history is None:
        return _unknown(0, "not enough history to judge the read:write trend: no ratio history was read")

    known = [(i, y) for i, r in enumerate(history.points) if (y := _log10(r)) is not None]
    fit = _fit(known) if len(known) >= MIN_POINTS else None
    if fit is None or not _fires(fit):
        half = len(history.points) - math.ceil(len(history.points) / 2)
        recent_known = [(i, y) for i, y in known if i >= half]
        recent_fit = _fit(recent_known) if len(recent_known) >= MIN_POINTS else None
        if recent_fit is not None and _fires(recent_fit):
            fit = recent_fit
    recent, before = _log10(history.recent), _log10(history.recent_before)
    shift = None if recent is None or before is None else recent - before

    if fit is None and shift is None:
        return _unknown(
            len(known),
            f"not enough history to judge the read:write trend: {len(known)} of {len(history.points)} "
            f"points known ({MIN_POINTS} needed) and no recent shift measured",
        )

    slope_dir = _sign(fit.change_log10) if fit is not None and _fires(fit) else 0
    shift_dir = 0
    if shift is not None and abs(shift) >= SHIFT_LOG10:
        shift_dir = _sign(shift)

    # Both fired and point opposite ways (each is -1, 0 or +1).
    conflict = slope_dir * shift_dir < 0
    direction = 0 if conflict else slope_dir or shift_dir

    clauses = []
    if fit is not None:
        clauses.append(_slope_clause(fit, history.period_s))
    # (shift is known only when both are; the two checks after it are for the type checker)
    if shift is not None and history.recent is not None and history.recent_before is not None:
        clauses.append(
            _shift_clause(
                history.recent, history.recent_before, history.shift_s, history.period_s, first=fit is None
            )
        )
    if conflict:
        verdict = (
            "the long trend and the recent shift disagree, so neither side is judged to be gaining share"
        )
        text = " but ".join(clauses)
    else:
        verdict = _verdict(direction, fit, shift)
        text = ", and ".join(clauses)
    return RatioTrend(
        direction=direction,
        known=True,
        change_log10=None if fit is None else fit.change_log10,
        fit_r2=None if fit is None else fit.r2,
        shift_log10=shift,
        points=len(known),
        message=f"{text}: {verdict}",
    )


def _fires(fit: _Fit) -> bool:
    return abs(fit.change_log10) >= CHANGE_LOG10 and fit.r2 >= MIN_R2


def _unknown(points: int, message: str) -> RatioTrend:
    return RatioTrend(
        direction=0,
        known=False,
        change_log10=None,
        fit_r2=None,
        shift_log10=None,
        points=points,
        message=message,
    )


def _log10(ratio: float | None) -> float | None:
    # A period with no writes has an infinite ratio and one with no reads a zero ratio: neither
    # has a logarithm, so they count as not recorded rather than bending the line.
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return None
    return math.log10(ratio)


def _sign(x: float) -> int:
    return 1 if x > 0 else -1


def _fit(known: list[tuple[int, float]]) -> _Fit:
    """Least squares of log10(ratio) on the index. The index, not the position among the known
    points, is the x: a missing week leaves a gap in time, it does not bring two weeks closer."""
    n = len(known)
    mean_x = sum(x for x, _ in known) / n
    mean_y = sum(y for _, y in known) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in known)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in known)
    syy = sum((y - mean_y) ** 2 for _, y in known)
    slope = sxy / sxx  # sxx > 0: at least MIN_POINTS distinct indices
    r2 = 0.0 if syy <= _FLAT_VARIANCE else min(1.0, sxy * sxy / (sxx * syy))
    first, last = known[0][0], known[-1][0]
    return _Fit(
        change_log10=slope * (last - first),
        r2=r2,
        start=mean_y + slope * (first - mean_x),
        span_periods=last - first,
    )


def _slope_clause(fit: _Fit, period_s: float) -> str:
    # The fitted line's ends, not the first and last points: one noisy end week does not misstate
    # the trend, and their quotient is exactly 10**change_log10, the quantity the rule tests.
    start = 10**fit.start
    end = 10 ** (fit.start + fit.change_log10)
    span = _duration_words(fit.span_periods * period_s)
    shown_start, shown_end = _ratio_text(start), _ratio_text(end)
    if shown_start == shown_end:
        movement = f"held at {shown_start}"
    else:
        verb = "rose" if fit.change_log10 > 0 else "fell"
        movement = f"{verb} from {shown_start} to {shown_end}"
    return f"read:write ratio {movement} over {span} (fit R² {fit.r2:.2f})"


def _shift_clause(recent: float, before: float, shift_s: float, period_s: float, *, first: bool) -> str:
    subject = "read:write ratio is" if first else "it is"
    return (
        f"{subject} {_ratio_text(recent)} over the last {_duration_words(shift_s)} against "
        f"{_ratio_text(before)} over the same span {_duration_words(period_s)} earlier"
    )


def _verdict(direction: int, fit: _Fit | None, shift: float | None) -> str:
    if direction > 0:
        return "reads are gaining share"
    if direction < 0:
        return "writes are gaining share"
    # Say which guard held, so a reader can tell a small move from an inconsistent one.
    why = []
    if fit is not None:
        if abs(fit.change_log10) < CHANGE_LOG10:
            why.append(f"the fitted change is under {10**CHANGE_LOG10:.2g}x")
        else:
            why.append(f"the fit's R² is under {MIN_R2:.2g}, not a consistent trend")
    if shift is not None:
        why.append(f"the recent shift is under {10**SHIFT_LOG10:.2g}x")
    return f"neither reads nor writes are gaining share ({'; '.join(why)})"


def _ratio_text(ratio: float) -> str:
    """'98:1', '4.5:1', '1:2.0': whole numbers where the precision would only be noise."""
    if ratio >= 10:
        return f"{ratio:.0f}:1"
    if ratio >= 1:
        return f"{ratio:.1f}:1"
    inverse = 1 / ratio
    return f"1:{inverse:.0f}" if inverse >= 10 else f"1:{inverse:.1f}"


def _duration_words(seconds: float) -> str:
    """'11 weeks', '3 days', '1 week': the largest unit the span is a whole number of (to the
    second); anything else in the short form of durations.format_seconds."""
    whole = round(seconds)
    if abs(seconds - whole) < 1e-6 and whole > 0:
        for unit_s, name in _UNITS:
            if whole % unit_s == 0:
                count = whole // unit_s
                return f"{count} {name}" if count == 1 else f"{count} {name}s"
    return format_seconds(seconds)
